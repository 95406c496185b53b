"""Random-noise baseline: same budget, no optimisation.

The control every protection must beat: a random perturbation with the same RGB L-infinity budget.
I2VGuard (CVPR 2025) and the papers that follow it report such a baseline; they match the mean and
variance of their own perturbation, we match the budget instead (the one number a user sets).

Needs nothing from the target model; :func:`stillguard.protect.protect` short-circuits it (no
loss, no steps) and then quantises and saves it like any other method.

Choices:
    * ``distribution="uniform"`` (default): i.i.d. uniform in ``[-eps, eps]`` per pixel and channel;
      ``"sign"``: ``+-eps`` with equal odds (the largest L2 at this L-infinity budget, which is
      where a PGD result usually ends);
    * the noise is drawn in RGB whatever the space, from the run's generator.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import METHODS
from .base import Method


@METHODS.register("noise")
@dataclass
class Noise(Method):
    """Same-budget random noise (see the module docstring)."""

    optimizes: ClassVar[bool] = False
    distribution: str = "uniform"

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "sign"):
            raise InputError(
                f"noise distribution must be 'uniform' or 'sign', got {self.distribution!r}"
            )

    def perturb(self, x: Tensor, eps: float, generator: torch.Generator) -> Tensor:
        """The perturbed image, inside the RGB box and [0, 1].

        Shape:
            ``x`` ``(B,3,H,W)`` in [0,1] -> same.
        """
        u = torch.rand(x.shape, generator=generator, dtype=torch.float64)
        delta = (2 * u - 1) if self.distribution == "uniform" else torch.sign(u - 0.5)
        return (x + (eps * delta).to(x)).clamp(0, 1)

    def loss(self, adapter, x, generator):  # type: ignore[no-untyped-def]
        raise InputError("the noise baseline has no loss; protect() draws it directly")
