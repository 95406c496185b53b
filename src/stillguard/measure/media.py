"""Write images, videos, GIFs and frame strips for reports.

Inputs follow the package conventions: images ``(3, H, W)`` or ``(1, 3, H, W)``, videos
``(F, 3, H, W)`` or ``(1, F, 3, H, W)``, float in ``[0, 1]``. Everything is written as 8-bit
(rounded, not truncated). MP4 needs the ``imageio-ffmpeg`` package (the ``[eval]`` extra); without
it :func:`write_mp4` returns ``None`` and logs why, so callers can fall back to the GIF.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from PIL import Image
from torch import Tensor

from stillguard.errors import InputError
from stillguard.tensors import to_uint8

logger = logging.getLogger(__name__)


def upscale(frames: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscaling by an integer factor (pixels stay crisp).

    Shape:
        ``(..., H, W, 3)`` -> ``(..., H*scale, W*scale, 3)``.
    """
    if scale < 1 or int(scale) != scale:
        raise InputError(f"scale must be a positive integer, got {scale!r}")
    if scale == 1:
        return frames
    return frames.repeat(scale, axis=-3).repeat(scale, axis=-2)


def scale_for(height: int, min_size: int) -> int:
    """Smallest integer factor that makes ``height`` at least ``min_size`` pixels."""
    return max(1, -(-min_size // max(1, height)))


def write_png(image: Tensor, path: str | Path, *, scale: int = 1) -> Path:
    """Write one image ``(3,H,W)`` or ``(1,3,H,W)`` in [0, 1] as an 8-bit PNG, upscaled ``scale`` x."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(upscale(to_uint8(image), scale)).save(path)
    return path


def side_by_side(videos: Sequence[Tensor], *, gap: int = 2, fill: float = 1.0) -> Tensor:
    """Put videos next to each other (left to right), separated by ``gap`` pixels of ``fill``.

    Shape:
        n x ``(F,3,H,W)`` (or ``(1,F,3,H,W)``) -> ``(F,3,H,n*W+(n-1)*gap)``.
    """
    vids = [v[0] if v.ndim == 5 else v for v in videos]
    if len({tuple(v.shape) for v in vids}) != 1:
        raise InputError(f"videos must share a shape, got {[tuple(v.shape) for v in vids]}")
    f, c, h, _ = vids[0].shape
    sep = torch.full((f, c, h, gap), fill)
    parts: list[Tensor] = []
    for i, v in enumerate(vids):
        parts += [sep] if i else []
        parts.append(v.detach().float().cpu())
    return torch.cat(parts, dim=-1)


def frame_strip(rows: Sequence[Tensor], *, gap: int = 2, fill: float = 1.0) -> Tensor:
    """A grid image: one row per video, its frames left to right.

    Shape:
        n x ``(F,3,H,W)`` -> ``(3, n*H+(n-1)*gap, F*W+(F-1)*gap)``.
    """
    lines = []
    for v in rows:
        v = v[0] if v.ndim == 5 else v
        lines.append(side_by_side([fr[None] for fr in v], gap=gap, fill=fill)[0])
    width = {ln.shape[-1] for ln in lines}
    if len(width) != 1:
        raise InputError("all rows of a frame strip need the same frame count and size")
    sep = torch.full((3, gap, width.pop()), fill)
    out: list[Tensor] = []
    for i, ln in enumerate(lines):
        out += [sep] if i else []
        out.append(ln)
    return torch.cat(out, dim=-2)


def write_gif(video: Tensor, path: str | Path, *, fps: float = 8.0, scale: int = 1) -> Path:
    """Write a looping animated GIF of ``(F,3,H,W)`` (or ``(1,F,3,H,W)``) in [0, 1], ``scale`` x."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = [Image.fromarray(f) for f in upscale(to_uint8(video), scale)]
    frames[0].save(
        path,
        save_all=True,
        append_images=frames[1:],
        duration=int(round(1000 / fps)),
        loop=0,
        optimize=False,
    )
    return path


def write_mp4(video: Tensor, path: str | Path, *, fps: float = 8.0, scale: int = 1) -> Path | None:
    """Write an H.264 MP4 through imageio-ffmpeg; ``None`` (logged) when it is not installed.

    Frames are upscaled ``scale`` x (nearest; more if needed to reach 16 px, the encoder's minimum)
    and padded to even sides, which yuv420p needs.
    """
    try:
        import imageio_ffmpeg
    except ImportError:
        logger.info("MP4 skipped: install the 'stillguard[eval]' extra for imageio-ffmpeg")
        return None
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = to_uint8(video)
    frames = upscale(frames, max(scale, scale_for(min(frames.shape[1:3]), 16)))
    h, w = frames.shape[1:3]
    frames = np.pad(frames, ((0, 0), (0, h % 2), (0, w % 2), (0, 0)), mode="edge")
    writer = imageio_ffmpeg.write_frames(
        str(path),
        (frames.shape[2], frames.shape[1]),
        fps=fps,
        codec="libx264",
        pix_fmt_out="yuv420p",
        macro_block_size=1,
        ffmpeg_log_level="error",
    )
    writer.send(None)
    for f in frames:
        writer.send(np.ascontiguousarray(f))
    writer.close()
    return path
