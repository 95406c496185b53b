"""AdvDM: maximise the diffusion model's denoising loss on the protected image.

Paper: Liang, Wu, Hua, Zhang, Xue, Song, Xue, Ma, Guan, "Adversarial Example Does Good: Preventing
Painting Imitation from Diffusion Models via Adversarial Examples", ICML 2023, arXiv 2302.04578.
The minimised loss is ``-MSE(pred, target)`` at a random timestep, i.e. a Monte-Carlo estimate of
the negated training loss. The Anti-I2V authors' CogVideoX baseline code ("GD") does the same.

Needs nothing beyond :meth:`Adapter.denoise` (every adapter).

Choices: [ENG] ``z0`` is the clean image's static-video latent, fixed during the run (the
baseline code used a reference video generated from the clean image; a static video needs no
generation and is what a frozen output would be); the conditioning is the protected image.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..losses import diffusion_loss
from ..registry import METHODS
from .base import Method, State, draw, scalar, static_latent


@METHODS.register("advdm")
@dataclass
class AdvDM(Method):
    """Maximise the denoising loss (see the module docstring)."""

    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        state = State()
        state.z0 = static_latent(adapter, x_clean)
        return state

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        d = adapter.denoise(x, t, noise, z0=state.z0)
        dm = diffusion_loss(d.pred, d.target)
        return -dm, {"diffusion": scalar(dm)}
