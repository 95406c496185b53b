"""The ``gaussian-noise`` transform: add zero-mean Gaussian noise (a purification and an EOT draw).

``sigma`` is the standard deviation in [0, 1] image units (0.03 is about 8/255). IP-Bench lists
Gaussian noise among its distortions; the value is our choice. ``real`` draws its noise from
``REAL_SEED``, so a purification is reproducible; the result is clipped to [0, 1] and rounded to 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from ..tensors import quantize8
from .base import REAL_SEED, Transform, as_float


def add_noise(x: Tensor, sigma: float, generator: torch.Generator) -> Tensor:
    """``x`` plus N(0, sigma^2) per pixel, clipped to [0, 1]. Shape: kept."""
    z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float64)
    return (x + sigma * z.to(x)).clamp(0.0, 1.0)


@TRANSFORMS.register("gaussian-noise")
@dataclass
class GaussianNoise(Transform):
    """Add Gaussian noise of standard deviation ``sigma`` ([0, 1] units)."""

    sigma: float = 0.03

    def __post_init__(self) -> None:
        self.sigma = as_float(self.sigma, "gaussian-noise sigma")
        if not 0.0 < self.sigma <= 0.5:
            raise InputError(f"gaussian-noise sigma {self.sigma} is outside (0, 0.5]; e.g. 0.03")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return add_noise(x, self.sigma, generator)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        g = torch.Generator().manual_seed(REAL_SEED)
        return quantize8(add_noise(x.to(torch.float64), self.sigma, g)).to(x)
