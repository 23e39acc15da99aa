"""Every preset runs 3 steps on synthetic data shaped like its dataset."""

import pytest

from chase.train.checkpoint import load_checkpoint
from chase.train.presets import list_presets, preset

#: One preset per family runs in the default suite; the rest are marked slow.
FAST = {"fmnist-demo", "cifar10-vgg19-chase", "cifar100-resnet50-chase", "cifar10-vgg19-set",
        "imagenet-resnet50-chase-sc0.4"}  # fmt: skip


PARAMS = [
    pytest.param(name, marks=() if name in FAST else (pytest.mark.slow,), id=name)
    for name in list_presets()
]


@pytest.mark.parametrize("name", PARAMS)
def test_preset_runs_three_steps_on_synthetic_data(cli, tmp_path, name):
    like = preset(name)["data"]["name"]
    out = tmp_path / "run"
    extra = []
    if like == "imagenet" and name in FAST:
        extra = ["--set", "data.image_size=64"]  # the slow suite runs every one at 224
    code, _, err = cli(
        "train", "--preset", name, "--dataset", "synthetic",
        "--set", f"data.synthetic_like={like}", "--set", "data.synthetic_size=16",
        "--batch-size", "4", "--set", "data.workers=0", "--stop-after-steps", "3",
        "--quiet", "--out", out, *extra,
    )  # fmt: skip
    assert code == 0, err
    assert load_checkpoint(out / "checkpoints" / "last.pt")["step"] == 3
