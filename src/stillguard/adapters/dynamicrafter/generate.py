"""Sampling, decoding and generation of the ``dynamicrafter`` adapter (a mixin).

The official DDIM sampler (:func:`.ddim.sample`; ``lvdm/models/samplers/ddim.py``) with
classifier-free guidance: the unconditional branch is the empty (negative) prompt plus the
Resampler tokens of a gray (all-zero in ``[-1, 1]``) image; the image latent is concatenated in
both branches; ``guidance_rescale`` and the 1024/512 models' dynamic latent rescale as configured.
:meth:`~DynamiCrafterVideo._sample` serves both
:meth:`~.adapter.DynamiCrafter.rollout` (eta 0, differentiable) and
:meth:`~DynamiCrafterVideo.generate` (the configured eta, noise from the seed, no grad).
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._shared.generate import VideoGeneration
from ..base import Conditioning
from . import ddim


class DynamiCrafterVideo(VideoGeneration):
    """DDIM sampling, ``decode`` and ``generate`` of the DynamiCrafter adapter."""

    def _uncond_image_tokens(self, batch: int) -> Tensor:
        """Resampler tokens of the all-zero (gray) image, the official unconditional image."""
        if self._uncond_tokens is None:
            with torch.no_grad():
                zeros = torch.zeros(
                    1, 3, self.height, self.width, device=self.device, dtype=self.dtype
                )
                self._uncond_tokens = self.pipe.image_proj_model(self.pipe.embedder(zeros))
        return self._uncond_tokens.expand(batch, -1, -1)

    def _sample(self, cond: Conditioning, noise: Tensor, steps: int, eta: float, generator: torch.Generator | None) -> Tensor:  # fmt: skip
        lat, fs = cond.image_latents, cond.extra["fs"]
        if noise.shape[1] != lat.shape[1]:
            lat = (cond.first_latent * self._sf).unsqueeze(1).expand(-1, noise.shape[1], -1, -1, -1)
        ctx = self._context(cond)
        use_cfg = self.guidance_scale != 1.0
        if use_cfg:
            u = Conditioning(lat, cond.first_latent, self._uncond_image_tokens(lat.shape[0]))
            ctx = torch.cat([self._context(u, negative=True), ctx])
            lat, fs = torch.cat([lat, lat]), torch.cat([fs, fs])

        def model_fn(z: Tensor, t: Tensor) -> tuple[Tensor, Tensor | None]:
            if not use_cfg:
                return self._unet(z, lat, t.float(), ctx, fs), None
            uncond, out = self._unet(torch.cat([z, z]), lat, t.float().repeat(2), ctx, fs).chunk(2)
            return out, uncond

        buffers = {"alphas_cumprod": self.pipe.alphas_cumprod}
        if self.pipe.use_dynamic_rescale:
            buffers["scale_arr"] = self.pipe.scale_arr
        return ddim.sample(
            model_fn, noise.to(self.device, self.dtype), buffers, steps=steps,
            spacing=self.timestep_spacing, parameterization=self.pipe.parameterization,
            guidance_scale=self.guidance_scale, guidance_rescale=self.guidance_rescale, eta=eta,
            generator=generator,
        )  # fmt: skip

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents ``(B,F,4,h,w)`` -> frames ``(B,F,3,H,W)`` in [0,1], frame by frame."""
        z = latents.to(self.device, self.dtype) / self._sf
        frames = torch.cat([self.pipe.vae.decode(f[None]) for f in z.flatten(0, 1)])
        return ((frames.float().unflatten(0, latents.shape[:2]) + 1) / 2).clamp(0, 1)

    # ------------------------------------------------------------------ generation
    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The official sampling (DDIM, eta, CFG, rescale) on the 8-bit working-size image.

        Shape: ``x (B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        img = (self.prepare(x.detach().to(self.device, self.dtype)) * 255).round() / 255
        cond = self._condition(img, frames)
        gen = torch.Generator(self.device).manual_seed(seed)
        f = self.pipe.vae.scale_factor_spatial
        shape = (img.shape[0], frames, 4, self.height // f, self.width // f)
        noise = torch.randn(shape, generator=gen, device=self.device, dtype=self.dtype)
        return self.decode(self._sample(cond, noise, steps, float(self.eta), gen))
