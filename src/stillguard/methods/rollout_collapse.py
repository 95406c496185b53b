"""Rollout-collapse: push every generated frame away from the photo, through the sampler.

This is stillguard's end-to-end reading of Anti-I2V's goal (arXiv 2603.24570: the generated video
loses the input's content), not the paper's feature losses, which stay under the name ``anti-i2v``.
Loss: ``-mean ||z - s||^2 / mean ||z||^2`` with ``z`` the final latent video of ``unroll``
differentiable sampler steps from fresh noise and ``s`` the clean photo's latent.

Needs: ``rollout``. Same sampler, noise and ``unroll`` choices as ``rollout-freeze``
(:mod:`stillguard.methods._rollout`).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..losses import per_image
from ..registry import METHODS
from ._rollout import RolloutMethod
from .base import State, logged


@METHODS.register("rollout-collapse")
@dataclass
class RolloutCollapse(RolloutMethod):
    """Push every generated frame away from the photo (see the module docstring)."""

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        z, scale = self.rollout(adapter, x, generator, state)
        away = per_image((z - state.still.float()).pow(2), z.shape[0]) / scale
        return -away, {"away": logged(away)}
