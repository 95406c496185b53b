"""Latents to videos for the ``cogvideox-i2v`` adapter (a mixin): decoding and generation.

:meth:`CogVideoXVideo.generate` runs the pipeline's own ``__call__`` (CFG, DDIM, VAE posterior
sampling with a seeded generator; for CogVideoX1.5 the pipeline pads and later drops the extra
latent frame itself). :meth:`CogVideoXVideo.decode` decodes as the pipeline does, for the latents of
:meth:`~.adapter.CogVideoXI2V.rollout`.
"""

from __future__ import annotations

from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_image


class CogVideoXVideo(VideoGeneration):
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

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own sampling (CFG, DDIM, VAE sampling with a seeded generator).

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        img = working_image(self, x)
        b = img.shape[0]
        return run_pipeline(
            self,
            seed,
            image=img,
            prompt_embeds=self._embeds(b),
            negative_prompt_embeds=self._embeds(b, True),
            height=self.height,
            width=self.width,
            num_frames=frames,
            num_inference_steps=steps,
            guidance_scale=self.guidance_scale,
        )
