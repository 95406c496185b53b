"""Motion in a video: optical flow, temporal dissimilarity, drift.

Conventions as in :mod:`stillguard.measure.metrics` (videos ``(B, F, 3, H, W)`` or ``(F, 3, H, W)``
in ``[0, 1]``). OpenCV is imported only when flow is measured (the ``eval`` extra).

Choices (the papers do not fix them):

* **Optical flow** is OpenCV Farneback on 8-bit grayscale frames (the video is rounded to 8 bit
  first, as a saved video would be), with ``pyr_scale=0.5, levels=3, winsize=15, iterations=3,
  poly_n=5, poly_sigma=1.2``. Farneback was preferred to DIS because DIS underestimates motion on
  64-px frames; RAFT would need weights. Motion is the mean per-pixel flow magnitude in pixels per
  frame over all consecutive pairs; the normalised variant divides by the frame diagonal so
  numbers compare across resolutions. Whole-frame means are diluted by a static background, so
  compare clean and protected videos of the same image, not absolute values across images.
  Byte-identical consecutive frames count as exactly 0 (Farneback leaves ~0.002 px of noise in
  the corners of textured identical frames).
  Measured on a smooth 64-px texture shifted by k = 1, 2, 3 px/frame: 1.001, 2.004, 3.009 px
  (``tests/test_metrics.py`` allows 5%).
* **Temporal dissimilarity** is the mean of ``1 - SSIM`` between consecutive frames
  (``ref="consecutive"``) or between each later frame and frame 0 (``ref="first"``). It is 0 for a
  frozen video. This is our reading of the "Temporal SSIM" of Vid-Freeze (arXiv 2509.23279), whose
  exact definition is not public.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from ..errors import InputError
from .metrics import as_videos, ssim

FARNEBACK = dict(pyr_scale=0.5, levels=3, winsize=15, iterations=3, poly_n=5, poly_sigma=1.2)


def _cv2():
    try:
        import cv2
    except ImportError:  # pragma: no cover - the [eval] extra is missing
        raise InputError("measuring motion needs OpenCV: pip install 'stillguard[eval]'") from None
    return cv2


def _gray_u8(frames: Tensor) -> list[np.ndarray]:
    """(F,3,H,W) in [0,1] -> list of (H,W) uint8 grayscale frames."""
    u8 = (frames.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    cv2 = _cv2()
    return [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in u8]


def per_frame_flow(video: Tensor, *, normalized: bool = False) -> np.ndarray:
    """Mean Farneback flow magnitude of each consecutive frame pair.

    Args:
        video: ``(B,F,3,H,W)`` or ``(F,3,H,W)`` in [0, 1], ``F >= 2``.
        normalized: divide by the frame diagonal ``sqrt(H^2 + W^2)`` (unit-free).
    Returns:
        pixels per frame (or diagonals per frame), float64.
    Shape:
        ``(B, F-1)``; ``(F-1,)`` for a single ``(F,3,H,W)`` video.
    """
    single = torch.is_tensor(video) and video.ndim == 4
    v = as_videos(video)
    out = np.zeros((v.shape[0], v.shape[1] - 1))
    for i in range(v.shape[0]):
        g = _gray_u8(v[i])
        for t in range(len(g) - 1):
            if np.array_equal(g[t], g[t + 1]):
                continue  # identical frames: zero motion by definition (skips border noise)
            fl = _cv2().calcOpticalFlowFarneback(g[t], g[t + 1], None, flags=0, **FARNEBACK)
            out[i, t] = float(np.linalg.norm(fl, axis=-1).mean())
    if normalized:
        out = out / math.hypot(v.shape[-2], v.shape[-1])
    return out[0] if single else out


def flow_magnitude(video: Tensor, *, normalized: bool = False) -> float:
    """Mean optical-flow magnitude over all consecutive frame pairs (and all videos of the batch).

    Args:
        video: ``(B,F,3,H,W)`` or ``(F,3,H,W)`` in [0, 1].
        normalized: divide by the frame diagonal.
    Returns:
        pixels per frame (0 for a frozen video).
    Shape:
        video -> scalar.
    """
    return float(per_frame_flow(video, normalized=normalized).mean())


def temporal_dissimilarity(video: Tensor, ref: str = "consecutive") -> float:
    """Mean ``1 - SSIM`` between frames: 0 for a frozen video, larger for more change.

    Args:
        video: ``(B,F,3,H,W)`` or ``(F,3,H,W)`` in [0, 1].
        ref: ``"consecutive"`` (frame t vs t+1) or ``"first"`` (frame t vs frame 0, t >= 1).
    Returns:
        mean over frame pairs and videos.
    Shape:
        video -> scalar.
    """
    v = as_videos(video)
    if ref == "consecutive":
        a, b = v[:, :-1], v[:, 1:]
    elif ref == "first":
        a, b = v[:, :1].expand_as(v[:, 1:]), v[:, 1:]
    else:
        raise InputError(f"ref must be 'consecutive' or 'first', got {ref!r}")
    return float((1.0 - ssim(a.contiguous(), b.contiguous())).mean())


def drift(video: Tensor) -> float:
    """Mean absolute change between the last and the first frame, in 8-bit steps (0..255).

    Shape:
        ``(B,F,3,H,W)`` or ``(F,3,H,W)`` -> scalar.
    """
    v = as_videos(video)
    return float((v[:, -1] - v[:, 0]).abs().mean() * 255)
