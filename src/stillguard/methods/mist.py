"""Mist: AdvDM plus a textural loss that pulls the VAE latent toward a target texture.

Paper: Liang, Wu, "Mist: Towards Improved Adversarial Examples for Diffusion Models",
arXiv 2305.12683. The objective maximised is ``dm_weight * L_DM - MSE(E(x), E(target))``
(the Anti-I2V authors' CogVideoX baseline, ``mist.py`` in their baseline repository); we minimise
its negative, ``MSE(E(x), E(target)) - dm_weight * L_DM``.

Needs nothing beyond :meth:`Adapter.encode` and :meth:`Adapter.denoise` (every adapter).

Choices: [AUTH-CODE] ``dm_weight=10000`` as in the baseline code (on our models this makes the
diffusion term dominate; lower it to let the texture term act); [ENG] ``target="pattern"``, a
synthetic high-contrast texture standing in for Mist's texture image; ``z0`` is the clean image's
static-video latent and ``E`` the unscaled first-frame latent, as in ``advdm`` and ``photoguard``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..adapters.base import Adapter
from ..losses import diffusion_loss
from ..registry import METHODS
from .base import Method, State, draw, scalar, static_latent, target_image


@METHODS.register("mist")
@dataclass
class Mist(Method):
    """Maximise the denoising loss, pull the latent toward a texture (see the module docstring)."""

    dm_weight: float = 10000.0
    target: str = "pattern"

    @torch.no_grad()
    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        state = State()
        state.z0 = static_latent(adapter, x_clean)
        state.tgt = adapter.encode(target_image(self.target, x_clean)).first_latent.detach()
        return state

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        cond = adapter.encode(x)
        d = adapter.denoise(cond, t, noise, z0=state.z0)
        dm = diffusion_loss(d.pred, d.target)
        tex = F.mse_loss(cond.first_latent.float(), state.tgt.float())
        return tex - self.dm_weight * dm, {"diffusion": scalar(dm), "textural": scalar(tex)}
