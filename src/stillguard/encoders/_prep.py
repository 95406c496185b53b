"""Image preprocessing in torch (differentiable): resize, centre crop, normalise.

The Hugging Face image processors of CLIP and DINO work on PIL/numpy and cut the gradient; these
functions redo the same steps on tensors: resize the shorter side to ``resize`` with antialiased
bicubic interpolation, centre-crop ``crop`` x ``crop``, subtract ``mean`` and divide by ``std``.
Choice: PIL's bicubic and torch's antialiased bicubic differ by about one 8-bit level on
photographs; the metrics built on them are similarities, not bit-exact reproductions.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError

CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def check(x: Tensor, what: str = "image") -> Tensor:
    """``(B, 3, H, W)`` float in [0, 1] (a small tolerance), else one clear error."""
    if not torch.is_tensor(x) or x.ndim != 4 or x.shape[1] != 3:
        shape = tuple(x.shape) if torch.is_tensor(x) else type(x).__name__
        raise InputError(f"{what} must have shape (B, 3, H, W), got {shape}")
    lo, hi = (float(v) for v in x.detach().aminmax()) if x.numel() else (0.0, 0.0)
    if lo < -1e-3 or hi > 1 + 1e-3:
        raise InputError(f"{what} must be in [0, 1], got [{lo:.3g}, {hi:.3g}]")
    return x


def resize_short(x: Tensor, size: int) -> Tensor:
    """Resize so the shorter side is ``size`` (aspect kept). Shape: ``(B,3,H,W)`` -> ``(B,3,h,w)``."""
    h, w = x.shape[-2:]
    s = size / min(h, w)
    out = (max(size, round(h * s)), max(size, round(w * s)))
    if out == (h, w):
        return x
    return F.interpolate(x, size=out, mode="bicubic", antialias=True, align_corners=False)


def center_crop(x: Tensor, size: int) -> Tensor:
    """The central ``size`` x ``size`` window. Shape: ``(B,3,H,W)`` -> ``(B,3,size,size)``."""
    h, w = x.shape[-2:]
    top, left = max(0, (h - size) // 2), max(0, (w - size) // 2)
    return x[..., top : top + size, left : left + size]


def normalise(x: Tensor, mean: Sequence[float], std: Sequence[float]) -> Tensor:
    m = torch.tensor(mean, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype, device=x.device).view(1, 3, 1, 1)
    return (x - m) / s


def prepare(
    x: Tensor, resize: int, crop: int, mean: Sequence[float], std: Sequence[float]
) -> Tensor:
    """Resize the shorter side, centre-crop, normalise (what CLIP/DINO processors do, in torch)."""
    x = check(x)
    return normalise(center_crop(resize_short(x, resize), crop), mean, std)


def squash(x: Tensor, size: int) -> Tensor:
    """Resize to ``size`` x ``size`` ignoring the aspect (a face crop to a network's input)."""
    if x.shape[-2:] == (size, size):
        return x
    return F.interpolate(x, size=(size, size), mode="bicubic", antialias=True, align_corners=False)


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Row-wise cosine similarity. Shape: ``(B, D)``, ``(B, D)`` -> ``(B,)``."""
    return F.cosine_similarity(a.float(), b.float(), dim=-1)
