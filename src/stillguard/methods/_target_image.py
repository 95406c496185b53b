"""Target images for the "pull toward an unrelated or low-quality image" losses (PhotoGuard, Mist).

The targets are independent of the run's seed (a fixed target, so that two seeds optimise the same
objective) and the same for every image of a batch, except ``blur``, which is each image's own.
"""

from __future__ import annotations

from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError
from ..tensors import gaussian_blur

#: the bundled unrelated natural photo (``target_image("anchor", ...)``)
ANCHOR = Path(__file__).resolve().parent.parent / "assets" / "anchor.png"
#: Seed of the private generator behind synthetic target images (see :func:`target_image`).
TARGET_SEED = 20250923


def target_image(spec: str, like: Tensor) -> Tensor:
    """A target image with the shape, device and dtype of ``like`` ``(B,3,H,W)`` (the same target
    for every image of a batch, except ``blur``, which is each image's own).

    ``spec``: ``"gray"`` (0.5 everywhere), ``"noise"`` (uniform noise from a private fixed seed),
    ``"pattern"`` (a high-contrast diagonal stripe/checker texture, a stand-in for Mist's textured
    target), ``"blur"`` (``like`` blurred with a wide Gaussian and 8x down/up-sampling: a
    low-quality version of the same content), ``"anchor"`` (the bundled natural photo
    ``assets/anchor.png``, a CC0 fundus photograph unrelated to any input; provenance in
    ``assets/README.md``), or a path to an image file (resized to fit).
    """
    _, _, h, w = like.shape
    if spec == "gray":
        return torch.full_like(like, 0.5)
    if spec == "noise":
        g = torch.Generator().manual_seed(TARGET_SEED)
        return torch.rand((1, *like.shape[1:]), generator=g).to(like).expand_as(like)
    if spec == "pattern":
        yy, xx = torch.meshgrid(torch.arange(h), torch.arange(w), indexing="ij")
        period = max(4, min(h, w) // 8)
        stripes = ((xx + yy) // max(1, period // 2)) % 2
        checker = (xx // period + yy // period) % 2
        img = torch.stack([stripes, checker, 1 - stripes], 0).float()[None]
        return (0.15 + 0.7 * img).to(like).expand_as(like)
    if spec == "blur":
        small = F.interpolate(like, scale_factor=1 / 8, mode="area") if min(h, w) >= 16 else like
        up = F.interpolate(small, size=(h, w), mode="bilinear", align_corners=False)
        return gaussian_blur(up, sigma=max(1.0, min(h, w) / 64)).clamp(0, 1)
    path = ANCHOR if spec == "anchor" else Path(spec)
    if not path.is_file():
        raise InputError(
            f"target {spec!r} is neither gray, noise, pattern, blur, anchor nor an existing image "
            "file"
        )
    from ..images import load_image

    img = load_image(path, min_side=1).tensor
    img = F.interpolate(img, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    return img.clamp(0, 1).to(like).expand_as(like)
