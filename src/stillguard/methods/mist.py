"""Mist: AdvDM plus a textural loss that pulls the VAE latent toward a target texture.

Paper: Liang, Wu, "Mist: Towards Improved Adversarial Examples for Diffusion Models",
arXiv 2305.12683. The objective maximised is ``dm_weight * L_DM - MSE(E(x), E(target))``: AdvDM's
training loss of the perturbed image plus a pull of its latent toward a target texture. We minimise
its negative, ``MSE(E(x), E(target)) - dm_weight * L_DM``.

The Anti-I2V authors' CogVideoX baseline (``mist.py`` in ``vaijsc/anti-i2v``) computes the same
expression with ``z0`` from the current perturbed image repeated over the frames (with gradient),
and a target image given by ``--target_image_prompt`` (required in practice); its ``--sign +``
ascends it (Mist), its default ``--sign -`` descends it (the opposite attack).

Needs nothing beyond :meth:`Adapter.encode` and :meth:`Adapter.denoise` (every adapter).

Choices: [AUTH-CODE] ``dm_weight=10000`` as in the baseline code (on our models this makes the
diffusion term dominate; lower it to let the texture term act); [ENG] ``target="pattern"``, a
synthetic high-contrast texture standing in for Mist's texture image; ``E`` the unscaled first-frame latent, as in ``advdm`` and ``photoguard``.
Option ``z0`` as in ``advdm``: ``"perturbed"`` (default, the definition and the authors' code) or
``"clean"`` (the clean image's fixed latent: the conditioning alone is attacked).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..losses import diffusion_loss, mse
from ..registry import METHODS
from .base import Method, State, check_z0, draw, logged, target_image, training_z0


@METHODS.register("mist")
@dataclass
class Mist(Method):
    """Maximise the denoising loss, pull the latent toward a texture (see the module docstring)."""

    dm_weight: float = 10000.0
    target: str = "pattern"
    z0: str = "perturbed"

    def __post_init__(self) -> None:
        check_z0(self.z0)

    def batchable(self) -> bool:
        return True

    @torch.no_grad()
    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        state = State()
        state.z0 = training_z0(adapter, x_clean, self.z0)
        state.tgt = adapter.encode(target_image(self.target, x_clean)).first_latent.detach()
        return state

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        cond = adapter.encode(x)
        d = adapter.denoise(cond, t, noise, z0=state.z0)
        dm = diffusion_loss(d.pred, d.target)
        tex = mse(cond.first_latent, state.tgt)
        return tex - self.dm_weight * dm, {"diffusion": logged(dm), "textural": logged(tex)}
