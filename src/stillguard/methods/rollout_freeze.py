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

Needs: ``rollout`` (CogVideoX-family adapters). The module also holds ``rollout-collapse`` (see its
class docstring), the same machinery aimed at Anti-I2V's goal.

Choices (none comes from a paper):
    * one noise video per PGD step from the run's generator (EOT over the sampler's noise); the
      result converges early (``docs/efficacy.md``, steps ablation: 25, 50 and 100 PGD steps give
      motion ratio 0.760, 0.759, 0.759 on 4 held-out images);
    * ``unroll=0`` uses the adapter's own number of inference steps, so the attacked sampler is the
      one the evaluation runs; a smaller ``unroll`` is cheaper (time and activation memory grow
      linearly with it) and still a full trajectory, on a coarser schedule (unroll 2 and 5 gave
      0.761 and 0.758 against 0.759 for all 10 toy steps: unroll ablation);
    * the loss is normalised by the mean square of the rollout so that its value is comparable
      across models and images; this does not change the sign-gradient PGD steps.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..errors import InputError
from ..registry import METHODS
from .base import Method, scalar

TARGETS = ("first", "input", "first+input")


@dataclass
class _Rollout(Method):
    """Shared part of the rollout methods: the sampler to unroll and the clean photo's latent."""

    requires: ClassVar[frozenset[str]] = frozenset({"rollout"})
    unroll: int = 0

    def __post_init__(self) -> None:
        if self.unroll < 0:
            raise InputError(f"unroll must be >= 0 (0: the model's own steps), got {self.unroll}")

    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> None:
        self._steps = self.unroll or int(getattr(adapter, "num_inference_steps", 0) or 10)
        with torch.no_grad():
            cond = adapter.encode(x_clean.to(adapter.device, adapter.dtype))
            self._still = cond.image_latents[:, :1].detach()

    def rollout(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, Tensor]:
        """The generated latent video for one fresh noise draw and its (detached) mean square."""
        noise = torch.randn(adapter.latent_shape(1), generator=generator)
        z = adapter.rollout(x, noise.to(adapter.device, adapter.dtype), self._steps).float()
        return z, z.detach().pow(2).mean().clamp_min(1e-8)


@METHODS.register("rollout-freeze")
@dataclass
class RolloutFreeze(_Rollout):
    """Minimise the frame-to-frame change of a differentiable rollout (see the module docstring)."""

    target: str = "first"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.target not in TARGETS:
            raise InputError(f"target must be one of {', '.join(TARGETS)}, got {self.target!r}")

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, float]]:
        z, scale = self.rollout(adapter, x, generator)
        terms: dict[str, Tensor] = {}
        if "first" in self.target:
            terms["motion"] = (z[:, 1:] - z[:, :1]).pow(2).mean() / scale
        if "input" in self.target:
            terms["to_input"] = (z - self._still.float()).pow(2).mean() / scale
        loss = sum(terms.values())
        return loss, {k: scalar(v) for k, v in terms.items()}


@METHODS.register("rollout-collapse")
@dataclass
class RolloutCollapse(_Rollout):
    """Push every generated frame away from the photo, through the sampler (Anti-I2V's intent).

    Loss: ``-mean ||z - s||^2 / mean ||z||^2`` with ``z`` the rollout's final latent video and ``s``
    the clean photo's latent; same sampler, noise and ``unroll`` choices as rollout-freeze. This is
    our end-to-end reading of Anti-I2V's goal (the generated video loses the input's content), not
    the paper's feature losses, which stay under the name ``anti-i2v``.
    """

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator
    ) -> tuple[Tensor, dict[str, float]]:
        z, scale = self.rollout(adapter, x, generator)
        away = (z - self._still.float()).pow(2).mean() / scale
        return -away, {"away": scalar(away)}
