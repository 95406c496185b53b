"""Generation of the ``open-sora-1.2`` adapter (a mixin): v1.2's own I2V sampling, seeded.

:meth:`OpenSoraVideo.generate` follows ``RFLOW.sample`` with mask strategy "0" step for step
(:func:`.rflow.sample`): the photo is encoded with *sampled* posteriors of both VAEs
(the differentiable :meth:`~.adapter.OpenSora12.encode` uses their means), noise is drawn from the
seed, the configured number of CFG Euler steps runs, and the latent video is decoded; a decoded
size that the latent grid rounded (e.g. 426 px -> 53 latents -> 424 px) is resized back, bilinear.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._shared.generate import VideoGeneration, working_image
from . import rflow as RF


class OpenSoraVideo(VideoGeneration):
    """``generate`` of the Open-Sora 1.2 adapter."""

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """v1.2's I2V sampling (``RFLOW.sample`` with mask strategy "0"), seeded: the photo is
        encoded with sampled posteriors, noise drawn, 30 (configured) CFG Euler steps, decoded.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        gen = torch.Generator(self.device).manual_seed(seed)
        img = working_image(self, x) * 2 - 1
        ref = self.pipe.vae.encode(img.unsqueeze(2), generator=gen)
        b, c, _, h, w = ref.shape
        z = torch.randn(b, c, self._latent_frames(frames), h, w, generator=gen, device=self.device)
        z = torch.cat([ref, z.to(self.dtype)[:, :, 1:]], 2)
        ts = RF.sampling_timesteps(
            steps, self.height, self.width, frames, self.pipe.scheduler, self.device, self.dtype
        )
        z = RF.sample(self._cfg_velocity, z, ts, cond_frames=1, generator=gen)
        video = self.pipe.vae.decode(z, frames).transpose(1, 2).float()
        if video.shape[-2:] != (self.height, self.width):  # e.g. 426 px -> 53 latents -> 424 px
            video = torch.nn.functional.interpolate(
                video.flatten(0, 1), size=(self.height, self.width), mode="bilinear"
            ).unflatten(0, video.shape[:2])
        return ((video + 1) / 2).clamp(0, 1)
