"""The ``resize`` transform.

* ``resize`` goes down with antialiased bicubic and back up with bicubic in torch; ``real`` uses
Pillow LANCZOS down and BICUBIC up.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from PIL import Image
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from .base import Transform, as_float, down_up, per_image_pil


@TRANSFORMS.register("resize")
@dataclass
class Resize(Transform):
    """Downscale by ``scale`` (0 < scale <= 1) and upscale back to the original size."""

    scale: float = 0.5

    def __post_init__(self) -> None:
        self.scale = as_float(self.scale, "resize scale")
        if not 0.0 < self.scale <= 1.0:
            raise InputError(
                f"resize scale {self.scale} is outside (0, 1]: it is the downscale factor "
                "before upscaling back; use e.g. resize:0.5"
            )

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return down_up(x, self.scale)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
        return per_image_pil(
            x,
            lambda im: im.resize(size, Image.Resampling.LANCZOS).resize(
                (w, h), Image.Resampling.BICUBIC
            ),
        )
