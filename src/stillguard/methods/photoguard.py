"""PhotoGuard encoder attack: move the image's VAE latent onto a target image's latent.

Paper: Salman, Khaddaj, Leclerc, Ilyas, Madry, "Raising the Cost of Malicious AI-Powered Image
Editing", ICML 2023, arXiv 2302.06588 (the "encoder attack"): minimise
``||E(x + delta) - E(target)||_2^2``. Here ``E`` is the target model's own VAE as its pipeline
conditions on the image (the unscaled first-frame latent of :class:`Conditioning`).

Needs nothing beyond :meth:`Adapter.encode` (every adapter).

Choices: [ENG] target ``"gray"`` (PhotoGuard's demo used a mostly gray image); mean (not sum)
squared error, which only rescales the gradient; the image-embedding branch of SVD is not attacked.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..losses import mse
from ..registry import METHODS
from .base import Method, State, logged, target_image


@METHODS.register("photoguard")
@dataclass
class PhotoGuard(Method):
    """Encoder attack toward a target latent (see the module docstring)."""

    target: str = "gray"

    def batchable(self) -> bool:
        return True

    @torch.no_grad()
    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        state = State()
        state.tgt = adapter.encode(target_image(self.target, x_clean)).first_latent.detach()
        return state

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        loss = mse(adapter.encode(x).first_latent, state.tgt)
        return loss, {"latent_mse": logged(loss)}
