"""The ``bits`` transform: bit-depth reduction (feature squeezing, Xu et al., arXiv 1704.01155).

Each channel is rounded to ``2**bits`` evenly spaced levels in [0, 1]. The differentiable face uses
the straight-through estimator (the forward pass rounds, the gradient passes as identity), the usual
way to put a rounding inside EOT; ``real`` is the exact rounding, then 8 bits.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from ..tensors import quantize8
from .base import Transform


def reduce_bits(x: Tensor, bits: int) -> Tensor:
    """Round to ``2**bits`` levels. Shape: kept."""
    levels = 2**bits - 1
    return torch.round(x.clamp(0, 1) * levels) / levels


@TRANSFORMS.register("bits")
@dataclass
class Bits(Transform):
    """Keep ``bits`` bits per channel (1..7)."""

    bits: int = 5

    def __post_init__(self) -> None:
        if isinstance(self.bits, bool) or not isinstance(self.bits, int) or not 1 <= self.bits <= 7:
            raise InputError(f"bits {self.bits!r} must be an integer in 1..7; e.g. bits:5")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return x + (reduce_bits(x, self.bits) - x).detach()

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        return quantize8(reduce_bits(x, self.bits))
