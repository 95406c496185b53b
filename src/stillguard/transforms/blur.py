"""The ``blur`` transform.

* ``blur`` uses a normalised Gaussian of size ``2 * ceil(3 sigma) + 1`` with reflect padding; ``real``
is the same kernel in float64 (Pillow's GaussianBlur is a box-filter approximation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from ..tensors import gaussian_blur, quantize8
from .base import Transform, as_float


@TRANSFORMS.register("blur")
@dataclass
class Blur(Transform):
    """Gaussian blur with standard deviation ``sigma`` pixels (> 0)."""

    sigma: float = 1.0

    def __post_init__(self) -> None:
        self.sigma = as_float(self.sigma, "blur sigma")
        if not 0.0 < self.sigma <= 50.0:
            raise InputError(
                f"blur sigma {self.sigma} is outside (0, 50] pixels; use e.g. blur:1.0"
            )

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return gaussian_blur(x, self.sigma).clamp(0.0, 1.0)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        return quantize8(gaussian_blur(x.to(torch.float64), self.sigma)).to(x)
