"""SDS: score-distillation protection, the denoiser Jacobian skipped.

Paper: Xue, Liang, Wu, Chen, "Toward effective protection against diffusion-based mimicry through
score distillation", ICLR 2024, arXiv 2311.12832. The gradient of
the denoising loss w.r.t. the clean latent is replaced by the score residual ``eps_hat - eps``
(no back-propagation through the denoiser): ``sign="+"`` ascends it (SDS(+), like AdvDM, cheaper),
``sign="-"`` descends it (SDS(-), which the paper found more effective). The Anti-I2V authors'
CogVideoX baseline (``sds.py``) uses the surrogate ``0.5*MSE(z, sg(z - (eps_hat - eps)))``.

Needs: :meth:`Adapter.denoise` whose default ``z0`` (the static video of the image latent) keeps
the gradient to the image (every adapter, per the contract). ``z0`` is always the perturbed image's
own latent: the score residual is applied to it, so there is no "clean" variant (the authors'
``sds.py`` also encodes the current perturbed image; its ``--sign`` picks SDS(+) or SDS(-)).

Choices: [ENG] the residual is written parameterisation-free as ``z0 - x0_hat`` (for
``z_t = a*z0 + s*eps`` it equals ``(s/a) * (eps_hat - eps)``, same direction for epsilon-, v- and
EDM-parameterised models); [AUTH-CODE] default ``sign="-"``.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..errors import CapabilityError, InputError
from ..losses import per_image, sds_surrogate
from ..registry import METHODS
from .base import Method, State, draw, logged


@METHODS.register("sds")
@dataclass
class SDS(Method):
    """Score-distillation step, ascending (``+``) or descending (``-``) (see the module docstring)."""

    sign: str = "-"

    def __post_init__(self) -> None:
        if self.sign not in ("+", "-"):
            raise InputError(f"sds sign must be '+' or '-', got {self.sign!r}")

    def batchable(self) -> bool:
        return True

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        d = adapter.denoise(x, t, noise)
        if not d.z0.requires_grad:
            raise CapabilityError(
                f"target {adapter.registry_name!r} returns a z0 without gradient; sds needs the "
                "default static-video z0 to depend on the image"
            )
        residual = (d.z0 - d.x0).detach()
        surrogate = sds_surrogate(d.z0, residual)
        loss = -surrogate if self.sign == "+" else surrogate
        return loss, {
            "sds": logged(surrogate),
            "residual_rms": logged(per_image(residual.pow(2), residual.shape[0]).sqrt()),
        }
