"""Per-image ImageNet transforms written with PIL (there is no torchvision here).

Train: random-resized crop (area 8%-100%, aspect 3/4-4/3, Szegedy et al. 2015) + horizontal
flip. Eval: resize the shorter side to ``size * 256 / 224`` and center-crop ``size``. Both
return uint8 (C, H, W) tensors; normalisation happens once per batch. Randomness comes from a
``random.Random`` the caller seeds per (seed, epoch, example), so results do not depend on which
worker process decodes the image.
"""

from __future__ import annotations

import math
import random

import numpy as np
import torch
from PIL import Image

SCALE = (0.08, 1.0)
RATIO = (3.0 / 4.0, 4.0 / 3.0)
RESIZE_FRACTION = 256.0 / 224.0


def _crop_box(width: int, height: int, rng: random.Random) -> tuple[int, int, int, int]:
    """(left, top, right, bottom) of a random crop with the area and aspect limits above."""
    area = width * height
    log_lo, log_hi = math.log(RATIO[0]), math.log(RATIO[1])
    for _ in range(10):
        target = area * rng.uniform(*SCALE)
        aspect = math.exp(rng.uniform(log_lo, log_hi))
        w = round(math.sqrt(target * aspect))
        h = round(math.sqrt(target / aspect))
        if 0 < w <= width and 0 < h <= height:
            left, top = rng.randint(0, width - w), rng.randint(0, height - h)
            return left, top, left + w, top + h
    # Fallback: the largest centred crop whose aspect lies within RATIO.
    aspect = width / height
    if aspect < RATIO[0]:
        w, h = width, round(width / RATIO[0])
    elif aspect > RATIO[1]:
        w, h = round(height * RATIO[1]), height
    else:
        w, h = width, height
    left, top = (width - w) // 2, (height - h) // 2
    return left, top, left + w, top + h


def train_transform(image: Image.Image, size: int, rng: random.Random) -> torch.Tensor:
    """Random-resized crop to ``size`` x ``size`` and a random horizontal flip."""
    box = _crop_box(image.width, image.height, rng)
    out = image.resize((size, size), Image.Resampling.BILINEAR, box=box)
    if rng.random() < 0.5:
        out = out.transpose(Image.Transpose.FLIP_LEFT_RIGHT)
    return to_uint8_tensor(out)


def eval_transform(image: Image.Image, size: int) -> torch.Tensor:
    """Resize the shorter side to ``round(size * 256 / 224)``, center-crop ``size``."""
    short = round(size * RESIZE_FRACTION)
    scale = short / min(image.width, image.height)
    width = max(size, round(image.width * scale))
    height = max(size, round(image.height * scale))
    resized = image.resize((width, height), Image.Resampling.BILINEAR)
    left, top = (width - size) // 2, (height - size) // 2
    return to_uint8_tensor(resized.crop((left, top, left + size, top + size)))


def to_uint8_tensor(image: Image.Image) -> torch.Tensor:
    """An RGB PIL image as a uint8 (3, H, W) tensor."""
    array = np.asarray(image.convert("RGB"), dtype=np.uint8)
    return torch.from_numpy(array.copy()).permute(2, 0, 1).contiguous()
