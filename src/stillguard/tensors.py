"""Small tensor helpers shared by every layer: range checks, 8-bit rounding, uint8 export, blur.

One helper per job (the loop, the spaces, the transforms, the methods and the measurements all use
these). Conventions: images ``(B, 3, H, W)`` and videos ``(B, F, 3, H, W)`` float in ``[0, 1]``.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from .errors import InputError


def check_range(x: Any, what: str, tol: float = 1e-3) -> None:
    """Refuse a non-tensor, an empty or non-finite tensor, or values outside ``[0, 1]`` (± ``tol``).

    Raises:
        InputError: one line naming ``what`` and how to fix it.
    """
    if not torch.is_tensor(x):
        raise InputError(f"{what} must be a torch tensor, got {type(x).__name__}")
    x = x.detach()
    if x.numel() == 0 or not torch.isfinite(x).all():
        raise InputError(f"{what} is empty or holds NaN/inf values; pass a finite tensor in [0, 1]")
    lo, hi = float(x.min()), float(x.max())
    if lo < -tol or hi > 1 + tol:
        raise InputError(
            f"{what} has values in [{lo:.3g}, {hi:.3g}] but must be in [0, 1]; "
            "divide 8-bit data by 255 or map [-1, 1] data with (x + 1) / 2"
        )


def check_image(x: Any, what: str = "image", *, batch: int | None = 1) -> Tensor:
    """Validate one image (or a batch) and return it as float32.

    Args:
        x: ``(3, H, W)`` or ``(B, 3, H, W)`` float tensor in ``[0, 1]``.
        what: the name used in error messages.
        batch: the required batch size, or ``None`` for any.

    Shape:
        returns ``(B, 3, H, W)`` float32 (a ``(3, H, W)`` input gains a batch axis).
    """
    if not torch.is_tensor(x):
        raise InputError(
            f"{what} must be a torch tensor (1,3,H,W) in [0,1], got {type(x).__name__}; "
            "load files with stillguard.load_image"
        )
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[1] != 3 or (batch is not None and x.shape[0] != batch):
        want = "(1, 3, H, W)" if batch == 1 else "(B, 3, H, W)"
        raise InputError(f"{what} must have shape {want}, got {tuple(x.shape)}")
    if not x.is_floating_point():
        raise InputError(f"{what} must be float in [0, 1], got {x.dtype}; divide 8-bit data by 255")
    check_range(x, what, tol=0.0)
    return x.detach().float()


def quantize8(x: Tensor) -> Tensor:
    """Round to the nearest 8-bit level, as saving a PNG would (differentiable-free; same shape)."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def to_uint8(x: Any) -> np.ndarray:
    """An image or video in ``[0, 1]`` (tensor), or an 8-bit/float array -> uint8, channels last.

    Shape:
        ``(3,H,W)``/``(1,3,H,W)`` -> ``(H,W,3)``; ``(F,3,H,W)``/``(1,F,3,H,W)`` -> ``(F,H,W,3)``;
        1 or 4 channels are kept; arrays ``(H,W[,C])`` -> ``(H,W,C)``.
    """
    if torch.is_tensor(x):
        t = x.detach().cpu()
        if t.ndim == 5:
            if t.shape[0] != 1:
                raise InputError(f"one video at a time, got a batch of shape {tuple(x.shape)}")
            t = t[0]
        elif t.ndim == 4 and t.shape[0] == 1:
            t = t[0]
        if t.ndim not in (3, 4) or t.shape[-3] not in (1, 3, 4):
            raise InputError(
                f"expected (F,C,H,W) or (C,H,W) with C in 1, 3, 4, got {tuple(x.shape)}"
            )
        if t.is_floating_point():
            t = (t.float().clamp(0, 1) * 255).round()
        return np.ascontiguousarray(t.to(torch.uint8).movedim(-3, -1).numpy())
    arr = np.asarray(x)
    if arr.dtype != np.uint8:
        arr = np.clip(np.round(arr.astype(np.float64) * 255), 0, 255).astype(np.uint8)
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"cannot use an image of shape {tuple(arr.shape)}; expected (H, W[, C])")
    return np.ascontiguousarray(arr)


def pad(x: Tensor, widths: tuple[int, int, int, int]) -> Tensor:
    """Reflect padding, falling back to replicate when the image is too small to reflect."""
    h, w = x.shape[-2:]
    ok = max(widths[0], widths[1]) < w and max(widths[2], widths[3]) < h
    return F.pad(x, widths, mode="reflect" if ok else "replicate")


def gaussian_kernel1d(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian of length ``2 * ceil(3 sigma) + 1``. Shape: ``(K,)``."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur (radius ``ceil(3 sigma)``, reflect padding); differentiable.

    Shape:
        ``(B, C, H, W)`` -> same.
    """
    k = gaussian_kernel1d(sigma, x.dtype, x.device)
    r, c = k.numel() // 2, x.shape[1]
    y = F.conv2d(pad(x, (r, r, 0, 0)), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(pad(y, (0, 0, r, r)), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)
