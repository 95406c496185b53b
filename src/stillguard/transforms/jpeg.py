"""The ``jpeg`` transform.

* ``jpeg`` uses kornia's ``jpeg_codec_differentiable`` (Reich et al., arXiv 2309.06978), which
models 4:2:0 chroma subsampling and the standard quality-scaled tables; ``real`` is Pillow at the
same quality with 4:2:0 subsampling.
"""

from __future__ import annotations

import io
from dataclasses import dataclass

import torch
from kornia.enhance import jpeg_codec_differentiable
from PIL import Image
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from .base import Transform, per_image_pil


@TRANSFORMS.register("jpeg")
@dataclass
class Jpeg(Transform):
    """JPEG compression at ``quality`` (1..100), 4:2:0 chroma subsampling."""

    quality: int = 75

    def __post_init__(self) -> None:
        if isinstance(self.quality, bool) or not isinstance(self.quality, int):
            raise InputError(f"jpeg quality must be an integer, got {self.quality!r}; e.g. jpeg:75")
        if not 1 <= self.quality <= 100:
            raise InputError(
                f"jpeg quality {self.quality} is outside 1..100 (higher keeps more detail); "
                "use e.g. jpeg:75"
            )

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        q = torch.tensor([float(self.quality)], dtype=x.dtype, device=x.device)
        return jpeg_codec_differentiable(x, q).clamp(0.0, 1.0)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        def codec(img: Image.Image) -> Image.Image:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=self.quality, subsampling=2)
            buf.seek(0)
            return Image.open(buf).convert("RGB")

        return per_image_pil(x, codec)
