"""Rollout-freeze: freeze the generated video end to end, through the model's own sampler.

This is stillguard's own method, not a paper's. Vid-Freeze (arXiv 2509.23279) freezes the video
indirectly, by making attention uniform at one random timestep; on the shipped toy model that moved
its attention loss by about 6% and the motion not at all (``docs/attention-effect.md``,
``docs/efficacy.md``). Rollout-freeze
states the goal directly: run ``unroll`` differentiable DDIM steps from fresh noise, exactly as the
pipeline samples (same scheduler, same conditioning), and minimise how much the generated latent
frames differ from a still video. The gradient reaches the image through every denoiser call and
the VAE encoder.

Loss (``target="first"``, the default): ``mean_f>=1 ||z_f - z_0||^2 / mean ||z||^2`` over the final
latent video ``z`` of the rollout; frame 0 is free, so the model may keep the photo and only loses
the motion. ``target="input"`` instead pulls every frame to the clean photo's latent (a still copy of
the photo); ``target="first+input"`` sums both.

Needs: ``rollout``. ``rollout-collapse`` (its own module) aims the same machinery
(:mod:`stillguard.methods._rollout`) at Anti-I2V's goal.

Choices (none comes from a paper; the shared ones are in :mod:`stillguard.methods._rollout`):
    * the result converges early (``docs/efficacy.md``, steps ablation: 25, 50 and 100 PGD steps
      give motion ratio 0.760, 0.759, 0.759 on 4 held-out images); unroll 2 and 5 gave 0.761 and
      0.758 against 0.759 for all 10 toy steps (unroll ablation).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..errors import InputError
from ..losses import per_image
from ..registry import METHODS
from ._rollout import RolloutMethod
from .base import State, logged

TARGETS = ("first", "input", "first+input")


@METHODS.register("rollout-freeze")
@dataclass
class RolloutFreeze(RolloutMethod):
    """Minimise the frame-to-frame change of a differentiable rollout (see the module docstring)."""

    target: str = "first"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target not in TARGETS:
            raise InputError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        z, scale = self.rollout(adapter, x, generator, state)
        n = z.shape[0]
        terms: dict[str, Tensor] = {}
        if "first" in self.target:
            terms["motion"] = per_image((z[:, 1:] - z[:, :1]).pow(2), n) / scale
        if "input" in self.target:
            terms["to_input"] = per_image((z - state.still.float()).pow(2), n) / scale
        loss = sum(terms.values())
        return loss, {k: logged(v) for k, v in terms.items()}
