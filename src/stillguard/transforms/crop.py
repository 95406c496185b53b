"""The ``crop`` transform.

* ``crop`` shifts the image by up to ``max_shift`` pixels with reflect padding (size kept); ``real``
shifts by ``(max_shift, max_shift)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from ..tensors import quantize8
from .base import Transform, shift


@TRANSFORMS.register("crop")
@dataclass
class Crop(Transform):
    """Shift by up to ``max_shift`` pixels each way with reflect padding (the size is kept)."""

    max_shift: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.max_shift, bool) or not isinstance(self.max_shift, int):
            raise InputError(f"crop max_shift must be an integer, got {self.max_shift!r}")
        if not 0 <= self.max_shift <= 64:
            raise InputError(f"crop max_shift {self.max_shift} is outside 0..64; use e.g. crop:4")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        m = self.max_shift
        shifts = torch.randint(
            -m, m + 1, (x.shape[0], 2), generator=generator, device=generator.device
        )
        return torch.cat(
            [shift(x[i : i + 1], int(dy), int(dx), m) for i, (dy, dx) in enumerate(shifts.tolist())]
        )

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        return quantize8(shift(x, self.max_shift, self.max_shift, self.max_shift))
