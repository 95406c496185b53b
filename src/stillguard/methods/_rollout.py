"""The machinery the rollout methods share: the sampler to unroll and the clean photo's latent.

Not a plug-in (nothing is registered here): ``rollout-freeze`` and ``rollout-collapse`` each build
on it, so that no method imports another method.

Choices (none comes from a paper):
    * one noise video per PGD step from the run's generator (EOT over the sampler's noise);
    * ``unroll=0`` uses the adapter's own number of inference steps, so the attacked sampler is the
      one the evaluation runs; a smaller ``unroll`` is cheaper (time and activation memory grow
      linearly with it) and still a full trajectory, on a coarser schedule;
    * losses are normalised by the mean square of the rollout so that their values are comparable
      across models and images; this does not change the sign-gradient PGD steps;
    * batches (:func:`stillguard.loop.protect_batch`): each image draws its noise from its own
      generator and is normalised by its own rollout's mean square, so a batch gives each image
      the loss it gets alone (the adapters' rollouts are per image: ``tests/test_adapter_batch.py``).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..errors import InputError
from ..generators import per_image
from ..losses import per_image as mean_per_image
from .base import Method, State


@dataclass
class RolloutMethod(Method):
    """Base of the rollout methods: ``unroll`` differentiable sampler steps from fresh noise."""

    requires: ClassVar[frozenset[str]] = frozenset({"rollout"})
    unroll: int = 0

    def __post_init__(self) -> None:
        if self.unroll < 0:
            raise InputError(f"unroll must be >= 0 (0: the model's own steps), got {self.unroll}")

    def batchable(self) -> bool:
        return True

    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        """The number of sampler steps and the clean photo's (still) latent ``(1, 1, C, h, w)``."""
        state = State(steps=self.unroll or int(getattr(adapter, "num_inference_steps", 0) or 10))
        with torch.no_grad():
            cond = adapter.encode(x_clean.to(adapter.device, adapter.dtype))
            state.still = cond.image_latents[:, :1].detach()
        return state

    def rollout(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, Tensor]:
        """The generated latent video for one fresh noise draw per image and each image's
        (detached) mean square.

        Shape:
            ``x`` ``(B,3,H,W)`` -> ``(B, F_lat, C_lat, h, w)`` and ``(B,)`` (0-dim for one image).
        """
        noise = per_image(lambda g: torch.randn(adapter.latent_shape(1), generator=g), generator)
        z = adapter.rollout(x, noise.to(adapter.device, adapter.dtype), state.steps).float()
        return z, mean_per_image(z.detach().pow(2), z.shape[0]).clamp_min(1e-8)
