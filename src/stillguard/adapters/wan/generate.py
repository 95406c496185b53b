"""Sampling through the Wan pipeline (a mixin): the differentiable rollout and the pipeline's own
generation. See the family's docstring (:mod:`stillguard.adapters.wan`) for the model facts and the
choices made; the denoiser calls and expert routing are :mod:`.adapter`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_photos
from .._shared.unipc import unipc_rollout
from ..base import Conditioning


class WanVideo(VideoGeneration):
    """:meth:`rollout` and :meth:`generate` of :class:`~.adapter.WanI2V`."""

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable UniPC steps (CFG per stage, experts routed) from pure ``noise``.

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)`` (TI2V: frame 0 replaced).
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        lat = noise.to(self.device, self.dtype)
        b = lat.shape[0]

        def velocity(lat: Tensor, t: Tensor) -> Tensor:
            model, scale = self._expert(float(t))
            tt = t.to(self.device).float().expand(b)
            if scale <= 1:
                return self._call(model, lat, cond, tt, self._embeds(b))
            two = Conditioning(
                *(torch.cat([v, v]) if v is not None else None
                  for v in (cond.image_latents, cond.first_latent, cond.image_embeds)),
                extra={k: torch.cat([v, v]) for k, v in cond.extra.items()},
            )  # fmt: skip
            embeds = torch.cat([self._embeds(b, True), self._embeds(b)])
            uncond, text = self._call(
                model, torch.cat([lat, lat]), two, tt.repeat(2), embeds
            ).chunk(2)
            return uncond + scale * (text - uncond)

        lat = unipc_rollout(self._rollout_scheduler, steps, lat, velocity, self.dtype)
        if self.expand:
            lat = torch.cat([cond.image_latents[:, :1], lat[:, 1:]], 1)
        return lat

    # ------------------------------------------------------------------ generation
    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own ``__call__`` on the 8-bit working-size photo (PIL, as a user would).

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        extra = {} if self.boundary is None else {"guidance_scale_2": self.guidance_scale_2}
        videos = []
        for i, photo in enumerate(working_photos(self, x)):  # one photo per pipeline call
            videos.append(run_pipeline(
                self, seed + i, image=photo, prompt_embeds=self._embeds(x.shape[0])[i : i + 1],
                negative_prompt_embeds=self._embeds(x.shape[0], True)[i : i + 1],
                height=self.height, width=self.width, num_frames=frames,
                num_inference_steps=steps, guidance_scale=self.guidance_scale, **extra,
            ))  # fmt: skip
        return torch.cat(videos)
