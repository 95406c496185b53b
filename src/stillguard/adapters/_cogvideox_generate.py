"""Latents to videos for the ``cogvideox-i2v`` adapter (a mixin): decoding and generation.

:meth:`CogVideoXVideo.generate` runs the pipeline's own ``__call__`` (CFG, DDIM, VAE posterior
sampling with a seeded generator; for CogVideoX1.5 the pipeline pads and later drops the extra
latent frame itself). :meth:`CogVideoXVideo.decode` decodes as the pipeline does, for the latents of
:meth:`~.cogvideox_i2v.CogVideoXI2V.rollout`.
"""

from __future__ import annotations

import torch
from torch import Tensor

from . import _common as C


class CogVideoXVideo:
    """``decode`` and ``generate`` of the CogVideoX-I2V adapter."""

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latent video -> frames in [0, 1], as the pipeline decodes them (no rounding).

        1.5: the front padding frames of a latent of the working length (``latent_shape``) are
        dropped first, as the pipeline drops them.

        Shape:
            latents ``(B,F_lat,C,h,w)`` -> video ``(B,F,3,H,W)``.
        """
        if latents.shape[1] == self.latent_shape(1)[1]:
            latents = latents[:, self._extra_frames(self._latent_frames(self.opt_num_frames)) :]
        frames = self.pipe.decode_latents(latents.to(self.device, self.dtype))
        return ((frames.permute(0, 2, 1, 3, 4).float() + 1) / 2).clamp(0, 1)

    @torch.no_grad()
    def generate(
        self,
        x: Tensor,
        *,
        seed: int = 0,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
    ) -> Tensor:
        """The pipeline's own sampling (CFG, DDIM, VAE sampling with a seeded generator).

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        C.check_image(x)
        img = self.prepare(x.detach().to(self.device, torch.float32)).clamp(0, 1).to(self.dtype)
        b = img.shape[0]
        video = self.pipe(
            image=img,
            prompt_embeds=self._embeds(b),
            negative_prompt_embeds=self._embeds(b, True),
            height=self.height,
            width=self.width,
            num_frames=num_frames or self.num_frames,
            num_inference_steps=num_inference_steps or self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            output_type="pt",
            generator=torch.Generator(self.device).manual_seed(seed),
        ).frames
        return video.float().clamp(0, 1)
