"""Sampling through the SANA-Video pipeline (a mixin): the differentiable rollout and the pipeline's
own generation. See the family's docstring (:mod:`stillguard.adapters.sana_video`) for the model
facts; the denoiser call is :mod:`.adapter`'s."""

from __future__ import annotations

import torch
from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_photos
from ..base import Conditioning


class SanaVideo(VideoGeneration):
    """:meth:`rollout` and :meth:`generate` of :class:`~.adapter.SanaVideoI2V`."""

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable steps of the pipeline's sampler (a private copy of its
        DPM-Solver++ on flow sigmas), CFG batched as ``[negative, prompt]``; frame 0 is the
        photo's latent and only frames 1+ are stepped, as in the pipeline.

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)``.
        """
        cond = self._cond(x)
        sch = self._rollout_scheduler
        sch.set_timesteps(steps, device=self.device)
        lat = noise.to(self.device, self.dtype)
        lat = torch.cat([cond.image_latents[:, :1], lat[:, 1:]], 1)
        b = lat.shape[0]
        cfg = self.guidance_scale > 1
        embeds, mask = self._text(b, cfg)
        for t in sch.timesteps:
            tt = t.to(self.device).float().expand(b)
            if cfg:
                uncond, text = self._forward(
                    torch.cat([lat, lat]), tt.repeat(2), embeds, mask
                ).chunk(2)
                v = uncond + self.guidance_scale * (text - uncond)
            else:
                v = self._forward(lat, tt, embeds, mask)
            moved = sch.step(v[:, 1:].transpose(1, 2), t, lat[:, 1:].transpose(1, 2))[0]
            lat = torch.cat([lat[:, :1], moved.transpose(1, 2).to(self.dtype)], 1)
        return lat

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own ``__call__`` on the 8-bit working-size photo (PIL, as a user would),
        one call per photo with the same seed. Resolution binning is on for the real transformers
        (``sample_size`` 30 or 22, as a user's call) and the identity at a bin size (480×832).

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        (ne, pe), (nm, pm) = (t.chunk(2) for t in self._text(1, True))
        binning = self.pipe.transformer.config.sample_size in (30, 22)
        videos = [
            run_pipeline(
                self,
                seed,
                image=photo,
                prompt_embeds=pe,
                prompt_attention_mask=pm,
                negative_prompt=None,
                negative_prompt_embeds=ne,
                negative_prompt_attention_mask=nm,
                height=self.height,
                width=self.width,
                frames=frames,
                num_inference_steps=steps,
                guidance_scale=self.guidance_scale,
                use_resolution_binning=binning,
            )  # fmt: skip
            for photo in working_photos(self, x)
        ]
        return torch.cat(videos)
