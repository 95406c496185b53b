"""Image and video metrics: PSNR, SSIM, fidelity and imperceptibility (motion: :mod:`.motion`).

Plain functions on tensors, no learned weights, nothing downloaded. Conventions: images are
``(B, 3, H, W)`` and videos ``(B, F, 3, H, W)`` float in ``[0, 1]``; video functions also accept a
single video ``(F, 3, H, W)``. Values outside ``[0, 1]`` (a ``[0, 255]`` or ``[-1, 1]`` tensor passed
by mistake) raise :class:`~stillguard.errors.InputError` instead of being silently rescaled.

Choices (the papers do not fix them):

* **SSIM** follows Wang et al. (2004) as scikit-image computes it with ``gaussian_weights=True``:
  an 11x11 Gaussian window (sigma 1.5), ``K1=0.01, K2=0.03``, data range 1, population
  covariances, computed per RGB channel and averaged, mean over the valid (un-padded) region. It is
  written in torch, so it is differentiable; frames smaller than 11 px are refused.
* **PSNR** uses data range 1; identical inputs give ``inf`` (callers serialising to JSON must map it).
* **L2** in :func:`imperceptibility` is the Euclidean norm of the whole difference tensor of one
  image in ``[0, 1]`` units; ``linf_255`` is the largest absolute pixel change in 8-bit steps.
* **Learned metrics** (LPIPS, DINO, CLIP, ArcFace) need weights that are not shipped and are never
  downloaded. :mod:`stillguard.encoders` loads them from local folders; a caller registers a
  function with :func:`register_learned_metric` (``stillguard bench --lpips DIR`` does it for its
  table); every unregistered one is reported as the string ``"not available"``, never a number.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from functools import lru_cache

import torch
import torch.nn.functional as F
from torch import Tensor

from stillguard.errors import InputError
from stillguard.tensors import check_range

#: Farneback parameters (see the module docstring).
_SSIM_SIGMA, _SSIM_RADIUS, _K1, _K2 = 1.5, 5, 0.01, 0.03
#: learned metric name -> function(original, protected) -> float, registered by the user.
LEARNED_METRICS: dict[str, Callable[[Tensor, Tensor], float]] = {}
LEARNED_NAMES = ("lpips", "dino", "clip", "arcface")
NOT_AVAILABLE = "not available"


# ---------------------------------------------------------------------------------------- checks
def as_videos(video: Tensor, what: str = "video") -> Tensor:
    """(F,3,H,W) or (B,F,3,H,W) -> (B,F,3,H,W), checked."""
    if torch.is_tensor(video) and video.ndim == 4:
        video = video.unsqueeze(0)
    if not torch.is_tensor(video) or video.ndim != 5 or video.shape[2] != 3:
        shape = tuple(video.shape) if torch.is_tensor(video) else type(video).__name__
        raise InputError(f"{what} must have shape (B, F, 3, H, W) or (F, 3, H, W), got {shape}")
    if video.shape[1] < 2:
        raise InputError(f"{what} has {video.shape[1]} frame(s); motion needs at least 2 frames")
    check_range(video, what)
    return video.detach().float().cpu()


def _pair(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    if not (torch.is_tensor(a) and torch.is_tensor(b)) or a.shape != b.shape:
        sa = tuple(a.shape) if torch.is_tensor(a) else type(a).__name__
        sb = tuple(b.shape) if torch.is_tensor(b) else type(b).__name__
        raise InputError(f"inputs must be tensors of the same shape, got {sa} and {sb}")
    if a.ndim < 3 or a.shape[-3] != 3:
        raise InputError(f"inputs must end in (3, H, W), got {tuple(a.shape)}")
    check_range(a, "first input")
    check_range(b, "second input")
    return a, b.to(a.dtype)


# ------------------------------------------------------------------------------- psnr and ssim
def psnr(a: Tensor, b: Tensor) -> Tensor:
    """Peak signal-to-noise ratio in dB, data range 1, per image.

    Args:
        a, b: images or videos of the same shape, in [0, 1].
    Returns:
        PSNR per image; ``inf`` where the two are identical.
    Shape:
        ``(..., 3, H, W)`` -> ``(...)``, e.g. ``(B,3,H,W)`` -> ``(B,)``, ``(B,F,3,H,W)`` -> ``(B,F)``.
    """
    a, b = _pair(a, b)
    mse = (a - b).pow(2).flatten(-3).mean(-1)
    out = torch.full_like(mse, math.inf)
    nz = mse > 0
    out[nz] = -10.0 * torch.log10(mse[nz])
    return out


@lru_cache(maxsize=4)
def _gauss_window(dtype: torch.dtype) -> Tensor:
    r = torch.arange(-_SSIM_RADIUS, _SSIM_RADIUS + 1, dtype=torch.float64)
    g = torch.exp(-(r**2) / (2 * _SSIM_SIGMA**2))
    g = g / g.sum()
    return (g[:, None] * g[None, :]).to(dtype).expand(3, 1, -1, -1).contiguous()


def ssim(a: Tensor, b: Tensor) -> Tensor:
    """Structural similarity (Gaussian window, as scikit-image), channel-averaged, per image.

    Differentiable in both inputs.

    Args:
        a, b: images or videos of the same shape, in [0, 1]; at least 11x11 pixels.
    Returns:
        SSIM per image, in ``[-1, 1]`` (1 for identical inputs).
    Shape:
        ``(..., 3, H, W)`` -> ``(...)``, e.g. ``(B,3,H,W)`` -> ``(B,)``, ``(B,F,3,H,W)`` -> ``(B,F)``.
    """
    a, b = _pair(a, b)
    size = 2 * _SSIM_RADIUS + 1
    if a.shape[-1] < size or a.shape[-2] < size:
        raise InputError(
            f"SSIM needs images of at least {size}x{size} pixels, got {tuple(a.shape)}"
        )
    lead = a.shape[:-3]
    x, y = a.reshape(-1, *a.shape[-3:]), b.reshape(-1, *b.shape[-3:])
    w = _gauss_window(x.dtype).to(x.device)

    def filt(t: Tensor) -> Tensor:
        return F.conv2d(t, w, groups=3)

    mx, my = filt(x), filt(y)
    vx = filt(x * x) - mx * mx
    vy = filt(y * y) - my * my
    cxy = filt(x * y) - mx * my
    c1, c2 = _K1**2, _K2**2
    s = ((2 * mx * my + c1) * (2 * cxy + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).reshape(lead)


# ------------------------------------------------------------------------------- fidelity
def _match(image: Tensor, height: int, width: int) -> Tensor:
    if image.shape[-2:] == (height, width):
        return image
    return F.interpolate(
        image, size=(height, width), mode="bicubic", antialias=True, align_corners=False
    ).clamp(0, 1)


def image_fidelity(video: Tensor, image: Tensor) -> dict[str, float]:
    """How well a generated video keeps its conditioning image.

    The image is resized (antialiased bicubic) to the video's resolution first.

    Args:
        video: ``(B,F,3,H,W)`` in [0, 1].
        image: ``(B,3,H',W')`` in [0, 1].
    Returns:
        ``psnr_first``/``ssim_first`` (frame 0 vs image) and ``psnr_all``/``ssim_all`` (mean over frames).
    Shape:
        -> dict of scalars (means over the batch).
    """
    v = as_videos(video)
    img = _match(image.detach().float().cpu(), *v.shape[-2:])
    ref = img.unsqueeze(1).expand_as(v).contiguous()
    p, s = psnr(v, ref), ssim(v, ref)
    return {
        "psnr_first": float(p[:, 0].mean()),
        "ssim_first": float(s[:, 0].mean()),
        "psnr_all": float(p.mean()),
        "ssim_all": float(s.mean()),
    }


def video_fidelity(video: Tensor, reference: Tensor) -> dict[str, float | list[float]]:
    """Frame-wise similarity of a (protected) video to a reference (clean) video.

    Args:
        video, reference: ``(B,F,3,H,W)`` in [0, 1], same shape.
    Returns:
        ``psnr_mean``, ``ssim_mean`` and per-frame lists ``psnr_frames``, ``ssim_frames`` (batch mean).
    Shape:
        -> dict.
    """
    v, r = as_videos(video), as_videos(reference, "reference")
    p, s = psnr(v, r), ssim(v, r)
    return {
        "psnr_mean": float(p.mean()),
        "ssim_mean": float(s.mean()),
        "psnr_frames": [float(x) for x in p.mean(0)],
        "ssim_frames": [float(x) for x in s.mean(0)],
    }


# ------------------------------------------------------------------------- imperceptibility
def register_learned_metric(name: str, fn: Callable[[Tensor, Tensor], float]) -> None:
    """Make a learned perceptual metric available to :func:`imperceptibility`.

    ``fn(original, protected)`` gets two ``(1,3,H,W)`` tensors in [0, 1] and returns a float. Use it to
    plug in LPIPS/DINO/CLIP/ArcFace from weights you have locally; stillguard never downloads them.
    """
    LEARNED_METRICS[name] = fn


def imperceptibility(original: Tensor, protected: Tensor) -> dict[str, float | str]:
    """How visible the perturbation is.

    Args:
        original, protected: ``(B,3,H,W)`` in [0, 1], same shape.
    Returns:
        ``psnr``, ``ssim``, ``linf_255`` (max change in 8-bit steps), ``l2`` (norm of the difference,
        [0, 1] units; batch means), plus every learned metric: its value, or ``"not available"``.
    Shape:
        -> dict.
    """
    a, b = _pair(original.detach().float().cpu(), protected.detach().float().cpu())
    d = (b - a).flatten(1)
    out: dict[str, float | str] = {
        "psnr": float(psnr(a, b).mean()),
        "ssim": float(ssim(a, b).mean()),
        "linf_255": float(d.abs().max() * 255),
        "l2": float(d.norm(dim=1).mean()),
    }
    for name in sorted(set(LEARNED_NAMES) | set(LEARNED_METRICS)):
        fn = LEARNED_METRICS.get(name)
        out[name] = float(fn(a, b)) if fn is not None else NOT_AVAILABLE
    return out
