"""The ``rgb`` perturbation space (see :mod:`stillguard.spaces` for the choices)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import SPACES
from .base import Space, rgb_box, uniform


@SPACES.register("rgb")
@dataclass
class Rgb(Space):
    """PGD directly on pixels: ``param`` is the RGB delta, own budget ``eps``.

    Shape:
        x: ``(B, 3, H, W)`` in [0, 1]; param: ``(B, 3, H, W)``.
    """

    def init(self, x: Tensor, generator: torch.Generator, random_start: bool) -> Tensor:
        if not random_start:
            return torch.zeros_like(x)
        return self.project(x, uniform(tuple(x.shape), self.eps, generator, x))

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        return rgb_box(x, x + param, self.eps)

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor, frac: float, it: int) -> Tensor:
        return param - frac * self.eps * torch.sign(grad)

    @torch.no_grad()
    def project(self, x: Tensor, param: Tensor) -> Tensor:
        return (rgb_box(x, x + param, self.eps) - x).detach()
