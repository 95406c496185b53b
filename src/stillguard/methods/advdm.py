"""AdvDM: maximise the diffusion model's training loss on the protected image.

Paper: Liang, Wu, Hua, Zhang, Xue, Song, Xue, Ma, Guan, "Adversarial Example Does Good: Preventing
Painting Imitation from Diffusion Models via Adversarial Examples", ICML 2023, arXiv 2302.04578.
AdvDM maximises the diffusion training loss of the perturbed image: the clean latent ``z0`` that
the denoiser must recover is the perturbed image's own latent, so the gradient flows through ``z0``
and through the conditioning. The minimised loss is ``-MSE(pred, target)`` at a random timestep and
noise, a Monte-Carlo estimate of the negated training loss.

The Anti-I2V authors' CogVideoX baseline (``gd.py`` in ``vaijsc/anti-i2v``) builds ``z0`` the same
way: it VAE-encodes the current perturbed image repeated over every frame, with gradient. Two of its
flags matter: ``--sign +`` ascends the loss (AdvDM); its default ``--sign -`` *descends* it (the
opposite attack); ``--use_ref`` (off by default) replaces the repeated image with a reference video
read from disk. It samples the VAE posterior; we take its mode (the same to about 2e-6 on the toy).
It saves PNGs by truncating to 8 bits, which can break the budget by one level; ours round and
re-project. Measured side by side on the toy (same image, budget, ``(t, noise)``): the same loss
value (relative difference <= 1.3e-7) and, with ``z0="perturbed"``, the same gradient.

Options:
    * ``z0="perturbed"`` (default): the definition above;
    * ``z0="clean"``: ``z0`` is the clean image's static-video latent, fixed during the run, so only
      the conditioning is attacked (stillguard's default before this option existed; a different
      attack from AdvDM as defined).

Needs nothing beyond :meth:`Adapter.denoise` (every adapter).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..losses import diffusion_loss
from ..registry import METHODS
from .base import Method, State, check_z0, draw, logged, training_z0


@METHODS.register("advdm")
@dataclass
class AdvDM(Method):
    """Maximise the denoising loss of the perturbed image (see the module docstring)."""

    z0: str = "perturbed"

    def __post_init__(self) -> None:
        check_z0(self.z0)

    def batchable(self) -> bool:
        return True

    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        return State(z0=training_z0(adapter, x_clean, self.z0))

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        d = adapter.denoise(x, t, noise, z0=state.z0)
        dm = diffusion_loss(d.pred, d.target)
        return -dm, {"diffusion": logged(dm)}
