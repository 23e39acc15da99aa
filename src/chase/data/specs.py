"""What each known dataset looks like: classes, shape, normalisation and train augmentation.

Augmentation choices (train loaders only, off with ``augment=False``):

- CIFAR-10/100: pad 4 + random 32x32 crop + horizontal flip, the standard CIFAR recipe.
- Fashion-MNIST: pad 2 + random 28x28 crop, no flip. Measured with ``small_cnn`` (dense, two
  epochs, one-cycle SGD, batch 128, one run each): no augmentation 90.6% test accuracy, crop
  89.2%, crop + flip 88.8%. Adding flips did not help; augmentation is expected to pay off only
  in longer runs (not measured here), so runs of a few epochs should pass ``augment=False``.
- MNIST: pad 2 + random crop only; digits are not mirror-symmetric.
- ImageNet: random-resized crop + flip per image in the folder loader (see ``transforms``).
- synthetic: whatever the dataset it imitates uses (ImageNet-like: pad/8 crop + flip).

Means and standard deviations are the per-channel statistics of each training set.
"""

from __future__ import annotations

from dataclasses import dataclass

from chase.checks import check, did_you_mean
from chase.errors import ConfigError


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset: what the model and the loaders need to know."""

    name: str
    num_classes: int
    in_channels: int
    image_size: tuple[int, int]
    mean: tuple[float, ...]
    std: tuple[float, ...]
    crop_padding: int
    flip: bool
    in_memory: bool = True


_CIFAR10 = DatasetSpec(
    name="cifar10",
    num_classes=10,
    in_channels=3,
    image_size=(32, 32),
    mean=(0.4914, 0.4822, 0.4465),
    std=(0.2470, 0.2435, 0.2616),
    crop_padding=4,
    flip=True,
)
_CIFAR100 = DatasetSpec(
    name="cifar100",
    num_classes=100,
    in_channels=3,
    image_size=(32, 32),
    mean=(0.5071, 0.4865, 0.4409),
    std=(0.2673, 0.2564, 0.2762),
    crop_padding=4,
    flip=True,
)
_IMAGENET = DatasetSpec(
    name="imagenet",
    num_classes=1000,
    in_channels=3,
    image_size=(224, 224),
    mean=(0.485, 0.456, 0.406),
    std=(0.229, 0.224, 0.225),
    crop_padding=28,  # used only by ImageNet-like synthetic data
    flip=True,
    in_memory=False,
)
_FASHION_MNIST = DatasetSpec(
    name="fashion-mnist",
    num_classes=10,
    in_channels=1,
    image_size=(28, 28),
    mean=(0.2860,),
    std=(0.3530,),
    crop_padding=2,
    flip=False,
)
_MNIST = DatasetSpec(
    name="mnist",
    num_classes=10,
    in_channels=1,
    image_size=(28, 28),
    mean=(0.1307,),
    std=(0.3081,),
    crop_padding=2,
    flip=False,
)
SPECS: dict[str, DatasetSpec] = {
    s.name: s for s in (_CIFAR10, _CIFAR100, _IMAGENET, _FASHION_MNIST, _MNIST)
}

ALIASES: dict[str, str] = {
    "cifar-10": "cifar10",
    "cifar_10": "cifar10",
    "cifar-100": "cifar100",
    "cifar_100": "cifar100",
    "fashion_mnist": "fashion-mnist",
    "fashionmnist": "fashion-mnist",
    "fmnist": "fashion-mnist",
}

SYNTHETIC = "synthetic"


def known_datasets() -> list[str]:
    """Canonical dataset names accepted by ``build_data``."""
    return [*SPECS, SYNTHETIC]


def resolve_dataset(name: str, field: str = "data.name") -> str:
    """Canonical dataset name for ``name`` or an alias; ``ConfigError`` naming ``field``."""
    key = name.strip().lower()
    if key in SPECS or key == SYNTHETIC:
        return key
    if key in ALIASES:
        return ALIASES[key]
    known = known_datasets()
    hint = did_you_mean(key, known + sorted(ALIASES))
    raise ConfigError(f"{field}: unknown dataset {name!r}{hint}; known: {', '.join(known)}")


def spec_and_size(
    canonical: str, synthetic_like: str, image_size: int | None, key: str = "data.image_size"
) -> tuple[DatasetSpec, tuple[int, int]]:
    """The spec the data follows (the imitated one for ``synthetic``) and the (H, W) to use.

    ``canonical`` is a name ``resolve_dataset`` returned; ``image_size`` may only change the size
    of ``imagenet`` and ``synthetic`` images (errors name it ``key``).
    """
    if canonical == SYNTHETIC:
        like = resolve_dataset(synthetic_like, "data.synthetic_like")
        check(like != SYNTHETIC, "data.synthetic_like", synthetic_like, "a real dataset")
        spec = SPECS[like]
    else:
        spec = SPECS[canonical]
    if image_size is None:
        return spec, spec.image_size
    check(image_size >= 1, key, image_size, "an integer >= 1")
    check(
        canonical in (SYNTHETIC, "imagenet") or (image_size, image_size) == spec.image_size,
        key,
        image_size,
        f"{spec.image_size[0]} for {canonical}, whose images cannot be resized (image_size "
        "applies to imagenet and synthetic data)",
    )
    return spec, (image_size, image_size)


@dataclass(frozen=True)
class DataShape:
    """What a model needs to know about a dataset: classes and the (C, H, W) of one input."""

    num_classes: int
    input_shape: tuple[int, int, int]


def data_shape(
    dataset: str, *, synthetic_like: str = "cifar10", image_size: int | None = None
) -> DataShape:
    """Classes and input shape of ``dataset`` without reading any file (``synthetic`` imitates
    ``synthetic_like``; ``image_size`` as in ``build_data``)."""
    canonical = resolve_dataset(dataset, "dataset")
    spec, (h, w) = spec_and_size(canonical, synthetic_like, image_size, "--image-size")
    return DataShape(spec.num_classes, (spec.in_channels, h, w))
