"""Random-noise baseline: same budget, no optimisation.

The control every protection must beat: a random perturbation with the same RGB L-infinity budget.
I2VGuard (CVPR 2025) and the papers that follow it report such a baseline; they match the mean and
variance of their own perturbation, we match the budget instead (the one number a user sets).

Needs nothing from the target model. It is what it is: a run of the one loop with zero steps from
a random start (``loop_overrides``), quantised and saved like any other method.

Choices:
    * ``distribution="uniform"`` (default): i.i.d. uniform in ``[-eps, eps]`` per pixel and channel;
      ``"sign"``: ``+-eps`` with equal odds (the largest L2 at this L-infinity budget, which is
      where a PGD result usually ends);
    * the noise is drawn in the ``rgb`` space (its default) from the run's generator; in another
      space the start is that space's own random start (``uniform``) or its sign (``sign``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

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
    loop_overrides: ClassVar[dict[str, Any]] = {"steps": 0, "random_start": True}
    distribution: str = "uniform"

    def __post_init__(self) -> None:
        if self.distribution not in ("uniform", "sign"):
            raise InputError(
                f"noise distribution must be 'uniform' or 'sign', got {self.distribution!r}"
            )

    def batchable(self) -> bool:
        return True

    def start(
        self, space: Any, x: Tensor, generator: torch.Generator, random_start: bool
    ) -> Tensor:
        """Uniform in the budget (the space's random start), or its sign (``+-eps``).

        Shape:
            ``x`` ``(1,3,H,W)`` -> the space's parameter.
        """
        param = space.init(x, generator, True)
        if self.distribution == "uniform":
            return param
        if getattr(space, "registry_name", "") != "rgb":
            raise InputError("sign noise is drawn in the rgb space; pass space='rgb'")
        return space.project(x, torch.sign(param) * space.eps)
