"""The ``diffpure`` transform: diffusion purification (Nie et al., DiffPure, arXiv 2205.07460).

Noise the image to time ``t`` (a fraction of the diffusion's ``T`` steps: ``x_t = sqrt(abar_t) x_0 +
sqrt(1 - abar_t) eps``), then denoise it back to ``t = 0`` with the model's DDPM sampler; the
adversarial perturbation drowns in the noise and the model fills in a clean image. The model is a
local folder (never downloaded) holding a diffusers ``UNet2DModel`` under ``unet/`` and a DDPM
``scheduler/`` (what ``DDPMPipeline.save_pretrained`` writes, e.g. ``google/ddpm-celebahq-256``),
safetensors only: ``diffpure:model=DIR`` or ``STILLGUARD_DIFFPURE``.

Choices (DiffPure leaves them to the model): ``t = 0.1`` (DiffPure used 0.1 on CIFAR-10, 0.15 on
ImageNet); ``steps = 20`` denoising steps evenly spaced from ``t`` to 0 (DiffPure integrates every
step; fewer is cheaper and noisier); the image is resized (antialiased bicubic) to the UNet's
``sample_size``, purified, and resized back, as the model only knows its own resolution; the noise
comes from ``REAL_SEED`` in ``real`` and from the run's generator in ``__call__`` (differentiable
through the UNet, so it can serve EOT, at the cost of ``steps`` UNet passes per draw).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError, ModelError
from ..registry import TRANSFORMS
from ..tensors import quantize8
from .base import REAL_SEED, Transform, as_float

ENV = "STILLGUARD_DIFFPURE"


@lru_cache(maxsize=2)
def load_diffusion(folder: str) -> tuple[Any, Any]:
    """``(unet, scheduler)`` of a DDPM pipeline folder, offline, safetensors only."""
    from diffusers import DDPMScheduler, UNet2DModel

    path = Path(folder)
    if not (path / "unet").is_dir() or not any((path / "unet").glob("*.safetensors")):
        raise ModelError(
            f"diffpure model {folder}: expected a DDPM pipeline folder with unet/*.safetensors and "
            "scheduler/ (DDPMPipeline.save_pretrained); pickles are not loaded"
        )
    try:
        unet = UNet2DModel.from_pretrained(folder, subfolder="unet", use_safetensors=True,
                                           local_files_only=True)  # fmt: skip
        sched = DDPMScheduler.from_pretrained(folder, subfolder="scheduler", local_files_only=True)
    except (OSError, ValueError) as err:
        raise ModelError(f"diffpure model {folder}: cannot load it ({err})") from None
    return unet.eval().requires_grad_(False), sched


def purify(
    x: Tensor, unet: Any, sched: Any, t: float, steps: int, generator: torch.Generator
) -> Tensor:
    """Noise ``x`` to time ``t`` and denoise it back. Shape: ``(B,3,H,W)`` in [0,1] -> same."""
    h, w = x.shape[-2:]
    size = unet.config.sample_size
    size = (size, size) if isinstance(size, int) else tuple(size)
    p = next(unet.parameters())
    z = F.interpolate(x, size=size, mode="bicubic", antialias=True, align_corners=False)
    z = (z.clamp(0, 1) * 2 - 1).to(p)
    n_train = sched.config.num_train_timesteps
    t_start = max(1, min(n_train - 1, round(t * n_train)))
    ts = sorted(
        {int(round(v)) for v in torch.linspace(t_start, 0, steps + 1).tolist()}, reverse=True
    )
    sched.set_timesteps(timesteps=ts)
    eps = torch.randn(z.shape, generator=generator, device=generator.device).to(z)
    z = sched.add_noise(z, eps, torch.tensor([ts[0]]))
    for step in ts:
        out = unet(z, step).sample
        z = sched.step(out, step, z, generator=generator).prev_sample
    z = ((z.float() + 1) / 2).clamp(0, 1)
    return (
        F.interpolate(z, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
        .clamp(0, 1)
        .to(x)
    )


@TRANSFORMS.register("diffpure")
@dataclass
class DiffPure(Transform):
    """Diffusion purification with a local DDPM folder: noise to ``t`` (0..1), denoise in ``steps``."""

    model: str = ""
    t: float = 0.1
    steps: int = 20

    def __post_init__(self) -> None:
        self.model = str(self.model or os.environ.get(ENV, ""))
        if not self.model:
            raise InputError(
                f"diffpure needs a local image-diffusion folder: diffpure:model=DIR (or set {ENV})"
            )
        self.t = as_float(self.t, "diffpure t")
        if not 0.0 < self.t < 1.0:
            raise InputError(f"diffpure t {self.t} is outside (0, 1); e.g. 0.1")
        if (
            isinstance(self.steps, bool)
            or not isinstance(self.steps, int)
            or not 1 <= self.steps <= 1000
        ):
            raise InputError(f"diffpure steps {self.steps!r} must be an integer in 1..1000")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        unet, sched = load_diffusion(self.model)
        return purify(x, unet, sched, self.t, self.steps, generator)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        unet, sched = load_diffusion(self.model)
        g = torch.Generator().manual_seed(REAL_SEED)
        return quantize8(purify(x.float(), unet, sched, self.t, self.steps, g)).to(x)
