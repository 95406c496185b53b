"""Sampling of the ``skyreels-v2-i2v`` adapter (a mixin): the differentiable rollout and the
pipeline's own generation. The model facts and choices are in the family's docstring
(:mod:`stillguard.adapters.skyreels`); the transformer call is :mod:`.adapter`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._shared.build import seeded
from .._shared.generate import VideoGeneration, run_pipeline, working_photos
from .._shared.unipc import unipc_rollout
from ..base import Conditioning


class SkyReelsVideo(VideoGeneration):
    """:meth:`rollout` and :meth:`generate` of :class:`~.adapter.SkyReelsV2I2V`."""

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable UniPC steps with CFG from pure ``noise``, as the pipeline
        samples (diffusion forcing: the prefix frame kept at the photo's latent, timestep 0, as
        the synchronous schedule ``ar_step=0`` does, and the pipeline's stale corrector input at
        the second step reproduced: see :func:`~.._shared.unipc.unipc_rollout`).

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        lat = noise.to(self.device, self.dtype)
        b = lat.shape[0]
        cfg = self.guidance_scale > 1
        two = Conditioning(
            *(torch.cat([v, v]) if v is not None else None
              for v in (cond.image_latents, cond.first_latent, cond.image_embeds)),
            extra={k: torch.cat([v, v]) for k, v in cond.extra.items()},
        ) if cfg else cond  # fmt: skip
        embeds = torch.cat([self._embeds(b, True), self._embeds(b)]) if cfg else self._embeds(b)

        def velocity(lat: Tensor, t: Tensor) -> Tensor:
            tt = t.to(self.device).float().expand(b)
            t0 = 0.0
            if self.forcing:
                prefix, t0 = self._prefix(cond, noise, tt)
                lat = torch.cat([prefix, lat[:, 1:]], 1)
            if not cfg:
                return self._call(lat, cond, tt, embeds, t0)
            uncond, text = self._call(torch.cat([lat, lat]), two, tt.repeat(2), embeds, t0).chunk(2)
            return uncond + self.guidance_scale * (text - uncond)

        lat = unipc_rollout(
            self._rollout_scheduler, steps, lat, velocity, self.dtype,
            stale_first_sample=self.forcing,
        )  # fmt: skip
        if self.forcing:
            lat = torch.cat([cond.image_latents[:, :1], lat[:, 1:]], 1)
        return lat

    # ------------------------------------------------------------------ generation
    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own ``__call__`` on the 8-bit working-size photo (PIL, as a user would);
        diffusion forcing as one window (``base_num_frames = num_frames``), synchronous.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        extra = {}
        if self.forcing:  # the pipeline's addnoise_condition draws from the global RNG: seeded
            extra = dict(base_num_frames=frames, fps=self.fps, ar_step=0,
                         addnoise_condition=self.addnoise_condition)  # fmt: skip
        videos = []
        for i, photo in enumerate(working_photos(self, x)):  # one photo per pipeline call
            with seeded(seed + i, self.device):
                videos.append(run_pipeline(
                    self, seed + i, image=photo, prompt_embeds=self._embeds(x.shape[0])[i : i + 1],
                    negative_prompt_embeds=self._embeds(x.shape[0], True)[i : i + 1],
                    height=self.height, width=self.width, num_frames=frames,
                    num_inference_steps=steps, guidance_scale=self.guidance_scale, **extra,
                ))  # fmt: skip
        return torch.cat(videos)
