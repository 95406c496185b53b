"""The perturbation-space base class and the helpers the spaces share (see the package docstring)."""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import InputError

_LAB_INDEX = {"L": 0, "a": 1, "b": 2}
# JPEG's (BT.601 full-range) RGB -> YCbCr, offsets dropped: only changes are mapped.
_RGB_TO_YCC = (
    (0.299, 0.587, 0.114),
    (-0.299 / 1.772, -0.587 / 1.772, 0.886 / 1.772),
    (0.701 / 1.402, -0.587 / 1.402, -0.114 / 1.402),
)


def rgb_box(x: Tensor, x_prime: Tensor, eps: float) -> Tensor:
    """Clip ``x_prime`` into the RGB L-infinity ball of radius ``eps`` around ``x`` and into [0, 1].

    Shape:
        x, x_prime: ``(B, 3, H, W)``; returns ``(B, 3, H, W)``.
    """
    return torch.clamp(x + torch.clamp(x_prime - x, -eps, eps), 0.0, 1.0)


def uniform(
    shape: tuple[int, ...], bound: float, generator: torch.Generator, like: Tensor
) -> Tensor:
    """Uniform draws in ``[-bound, bound]`` on the generator's device, moved to ``like``."""
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return ((2.0 * u - 1.0) * bound).to(device=like.device, dtype=like.dtype)


def box_ratio(x: Tensor, delta: Tensor, eps: float, gamut: bool) -> Tensor:
    """Per-entry factor in [0, 1] that brings ``delta`` inside ``[-eps, eps]`` (and the gamut)."""
    hi = torch.full_like(x, eps)
    lo = -hi
    if gamut:
        hi = torch.minimum(hi, 1.0 - x)
        lo = torch.maximum(lo, -x)
    hi, lo = hi.clamp_min(0.0), lo.clamp_max(0.0)
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    ratio = torch.ones_like(delta)
    ratio = torch.where(delta > hi, hi / safe, ratio)
    ratio = torch.where(delta < lo, lo / safe, ratio)
    return ratio.clamp(0.0, 1.0)


@dataclass
class Space:
    """Base class: a perturbation space. Subclasses override every method but ``describe``.

    Attributes:
        eps: radius of the RGB L-infinity box (``[0, 1]`` units) that always bounds the image.
    """

    eps: float = 8 / 255
    registry_name: ClassVar[str] = "space"

    def __post_init__(self) -> None:
        if not (0.0 < self.eps <= 1.0):
            raise InputError(
                f"eps={self.eps!r} is outside (0, 1]: it is the RGB budget in [0, 1] units "
                "(8/255 = 0.0314 is usual); pass e.g. eps=8/255"
            )

    def init(self, x: Tensor, generator: torch.Generator, random_start: bool) -> Tensor:
        """A fresh (leaf, no grad) optimisation variable: zeros, or random inside the own budget."""
        raise NotImplementedError

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        """Perturbed image, differentiable in ``param``, always inside the RGB box."""
        raise NotImplementedError

    def step(self, param: Tensor, grad: Tensor, frac: float, it: int) -> Tensor:
        """One sign-gradient descent step of ``frac`` times the own budget."""
        raise NotImplementedError

    def project(self, x: Tensor, param: Tensor) -> Tensor:
        """Bring ``param`` into the own budget (and, where possible, into the RGB box)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able configuration: the registry name and every dataclass field."""
        out: dict[str, Any] = {"name": self.registry_name}
        for f in dataclasses.fields(self):
            if f.init:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out
