"""The ``noisy-upscale`` transform.

* ``noisy-upscale`` is a cheap stand-in for the "noisy upscaling" purification of Hoenig et al.
(arXiv 2406.12027): Gaussian noise, then bicubic down and up (they upscale with a diffusion model,
which is not available offline). ``real`` draws its noise from a fixed seed (``REAL_SEED``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from ..tensors import quantize8
from .base import REAL_SEED, Transform, as_float, down_up


@TRANSFORMS.register("noisy-upscale")
@dataclass
class NoisyUpscale(Transform):
    """Add Gaussian noise of std ``noise``, downscale by ``scale``, upscale back (Hoenig et al.)."""

    noise: float = 0.05
    scale: float = 0.5

    def __post_init__(self) -> None:
        self.noise = as_float(self.noise, "noisy-upscale noise")
        self.scale = as_float(self.scale, "noisy-upscale scale")
        if not 0.0 <= self.noise <= 1.0:
            raise InputError(f"noisy-upscale noise {self.noise} is outside [0, 1]; e.g. 0.05")
        if not 0.0 < self.scale <= 1.0:
            raise InputError(f"noisy-upscale scale {self.scale} is outside (0, 1]; e.g. 0.5")

    def _apply(self, x: Tensor, generator: torch.Generator) -> Tensor:
        z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float64)
        return down_up((x + self.noise * z.to(x)).clamp(0.0, 1.0), self.scale)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._apply(x, generator)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        g = torch.Generator().manual_seed(REAL_SEED)
        return quantize8(self._apply(x.to(torch.float64), g)).to(x)
