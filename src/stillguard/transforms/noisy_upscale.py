"""The ``noisy-upscale`` transform (Hoenig et al., "Adversarial perturbations cannot reliably
protect artists from generative AI", arXiv 2406.12027): add Gaussian noise, then upscale.

Two forms:

* without ``upscaler`` (default): a cheap **bicubic stand-in**: Gaussian noise of std ``noise``,
  then bicubic down by ``scale`` and back up. Differentiable (EOT); tables label it "bicubic
  stand-in", since the paper upscales with a diffusion model;
* with ``upscaler=DIR``: a local diffusers ``LDMSuperResolutionPipeline`` folder (VQ decoder, UNet,
  scheduler; safetensors only, never downloaded; e.g. ``CompVis/ldm-super-resolution-4x-openimages``):
  noise, downscale by the pipeline's factor (``2 ** (len(vqvae.config.block_out_channels) - 1)``,
  4 for the published model), super-resolve with ``steps`` DDIM steps, resize to the input's size.
  The paper used the Stable Diffusion x4 upscaler (a text-conditioned pipeline), which is not
  supported here; the LDM super-resolution model is the text-free alternative. This form is a
  purification only (the pipeline runs without gradients): ``__call__`` refuses it for EOT.

``real`` draws its noise (and the upscaler's) from ``REAL_SEED``.
"""

from __future__ import annotations

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
from .base import REAL_SEED, Transform, as_float, down_up


@lru_cache(maxsize=2)
def load_upscaler(folder: str) -> Any:
    """A local ``LDMSuperResolutionPipeline`` (offline, safetensors only)."""
    from diffusers import LDMSuperResolutionPipeline

    path = Path(folder)
    if not (path / "model_index.json").is_file() or not any(path.rglob("*.safetensors")):
        raise ModelError(
            f"noisy-upscale upscaler {folder}: expected an LDMSuperResolutionPipeline folder "
            "(model_index.json, vqvae/, unet/, scheduler/) with .safetensors weights"
        )
    try:
        pipe = LDMSuperResolutionPipeline.from_pretrained(folder, use_safetensors=True,
                                                          local_files_only=True)  # fmt: skip
    except (OSError, ValueError) as err:
        raise ModelError(f"noisy-upscale upscaler {folder}: cannot load it ({err})") from None
    pipe.set_progress_bar_config(disable=True)
    return pipe


def upscale_with(pipe: Any, x: Tensor, steps: int, generator: torch.Generator) -> Tensor:
    """Downscale by the pipeline's factor, super-resolve, resize back. Shape: kept."""
    h, w = x.shape[-2:]
    factor = 2 ** (len(pipe.vqvae.config.block_out_channels) - 1)
    low = (max(1, round(h / factor)), max(1, round(w / factor)))
    small = F.interpolate(x.float(), size=low, mode="bicubic", antialias=True, align_corners=False)
    out = pipe(image=small.clamp(0, 1) * 2 - 1, num_inference_steps=steps, generator=generator,
               output_type="np").images  # fmt: skip
    big = torch.from_numpy(out).permute(0, 3, 1, 2).float()
    return F.interpolate(big, size=(h, w), mode="bicubic", antialias=True, align_corners=False)


@TRANSFORMS.register("noisy-upscale")
@dataclass
class NoisyUpscale(Transform):
    """Add Gaussian noise of std ``noise``, downscale by ``scale``, upscale back (Hoenig et al.);
    ``upscaler=DIR`` upscales with a local latent-diffusion super-resolution model instead."""

    noise: float = 0.05
    scale: float = 0.5
    upscaler: str = ""
    steps: int = 20

    def __post_init__(self) -> None:
        self.noise = as_float(self.noise, "noisy-upscale noise")
        self.scale = as_float(self.scale, "noisy-upscale scale")
        if not 0.0 <= self.noise <= 1.0:
            raise InputError(f"noisy-upscale noise {self.noise} is outside [0, 1]; e.g. 0.05")
        if not 0.0 < self.scale <= 1.0:
            raise InputError(f"noisy-upscale scale {self.scale} is outside (0, 1]; e.g. 0.5")
        if (
            isinstance(self.steps, bool)
            or not isinstance(self.steps, int)
            or not 1 <= self.steps <= 1000
        ):
            raise InputError(f"noisy-upscale steps {self.steps!r} must be an integer in 1..1000")

    def _noisy(self, x: Tensor, generator: torch.Generator) -> Tensor:
        z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float64)
        return (x + self.noise * z.to(x)).clamp(0.0, 1.0)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        if self.upscaler:
            raise InputError(
                "noisy-upscale with an upscaler is a purification only (no gradient through the "
                "pipeline); for EOT use noisy-upscale without upscaler (the bicubic stand-in)"
            )
        return down_up(self._noisy(x, generator), self.scale)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        g = torch.Generator().manual_seed(REAL_SEED)
        noisy = self._noisy(x.to(torch.float64), g)
        if self.upscaler:
            out = upscale_with(load_upscaler(self.upscaler), noisy, self.steps, g)
            return quantize8(out.clamp(0, 1)).to(x)
        return quantize8(down_up(noisy, self.scale)).to(x)
