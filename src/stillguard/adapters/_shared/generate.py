"""What every adapter's :meth:`~stillguard.adapters.base.Adapter.generate` shares (a mixin) and the
input helpers: the photo checked (:func:`check_image`) and brought to the working size.

:class:`VideoGeneration` holds the public ``generate`` (no grad, the photo checked, frame and step
counts defaulting to the adapter's settings) and hands the rest to the adapter's
``_generate_video``. The helpers give the inputs at the working size as the models take them:
:func:`working_image` (a tensor in [0, 1] on the adapter's device and dtype) or
:func:`working_photos` (8-bit PIL images, as a user would pass them), :func:`video_pixels` (a
video for a causal video VAE); :func:`run_pipeline` calls a diffusers pipeline's own ``__call__``
with a generator seeded from ``seed`` and returns ``(B, F, 3, H, W)`` in [0, 1].
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import InputError


def check_image(x: Tensor) -> None:
    """Refuse anything that is not ``(B, 3, H, W)`` floating point."""
    if (
        not isinstance(x, torch.Tensor)
        or x.ndim != 4
        or x.shape[1] != 3
        or not x.is_floating_point()
    ):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"expected an image batch (B, 3, H, W) float in [0, 1], got {shape}")


class VideoGeneration:
    """``generate`` of the adapters; each implements ``_generate_video``."""

    @torch.no_grad()
    def generate(
        self,
        x: Tensor,
        *,
        seed: int = 0,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
    ) -> Tensor:
        """Video ``(B,F,3,height,width)`` in [0,1] from the photo ``x`` ``(B,3,H,W)`` in [0,1],
        by the model's own sampling (see ``_generate_video``); same seed, same video."""
        check_image(x)
        frames = num_frames or self.num_frames
        steps = num_inference_steps or self.num_inference_steps
        return self._generate_video(x, seed, frames, steps)

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        raise NotImplementedError  # pragma: no cover - every adapter defines it


def working_image(adapter: Any, x: Tensor) -> Tensor:
    """``x`` resized to the working size (in float32), clamped to [0, 1], in the adapter's dtype."""
    img = adapter.prepare(x.detach().to(adapter.device, torch.float32)).clamp(0, 1)
    return img.to(adapter.dtype)


def working_photos(adapter: Any, x: Tensor) -> list[Any]:
    """``x`` at the working size as 8-bit PIL images (rounded), one per photo."""
    from PIL import Image

    img = adapter.prepare(x.detach().float().cpu()).clamp(0, 1)
    arr = (img * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    return [Image.fromarray(a) for a in arr]


def video_pixels(adapter: Any, video: Tensor, temporal: int) -> Tensor:
    """A video for a causal video VAE: ``(B,F,3,H,W)`` in [0,1] with ``F = 1 + k·temporal`` ->
    ``(B,3,F,height,width)`` in [-1,1] at the working size, differentiably.

    Raises:
        InputError: not a 5-D video, or a frame count the VAE cannot take.
    """
    if video.ndim != 5 or (video.shape[1] - 1) % temporal:
        raise InputError(
            f"expected a video (B, F, 3, H, W) with F = 1 + k*{temporal}, got {tuple(video.shape)}"
        )
    b, f = video.shape[:2]
    frames = adapter.prepare(video.to(adapter.device, adapter.dtype).flatten(0, 1)).unflatten(
        0, (b, f)
    )
    return (frames * 2 - 1).transpose(1, 2)


def run_pipeline(adapter: Any, seed: int, **inputs: Any) -> Tensor:
    """``adapter.pipe(**inputs)`` with a generator seeded from ``seed``; frames ``(B,F,3,H,W)``
    float in [0, 1]."""
    video = adapter.pipe(
        **inputs,
        output_type="pt",
        generator=torch.Generator(adapter.device).manual_seed(seed),
    ).frames
    return video.float().clamp(0, 1)
