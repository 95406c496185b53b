"""Sampling of the ``kandinsky5-i2v`` adapter (a mixin): the differentiable rollout and the
pipeline's own generation. The model facts and choices are in the family's docstring
(:mod:`stillguard.adapters.kandinsky5`); the transformer call is :mod:`.adapter`'s.
"""

from __future__ import annotations

import torch
from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_photos
from ..base import Conditioning


class KandinskyVideo(VideoGeneration):
    """:meth:`rollout`, :meth:`normalize_first_frames` and :meth:`generate` of
    :class:`~.adapter.Kandinsky5I2V`."""

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable Euler steps of the pipeline's schedule from pure ``noise``:
        frame 0 held at the photo's latent, frames 1+ stepped, CFG as two passes (the prompts may
        differ in length), then the pipeline's ``normalize_first_frame`` (what it decodes).

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)``.
        """
        from diffusers import FlowMatchEulerDiscreteScheduler

        lat = noise.to(self.device, self.dtype)
        cond = self._cond(x, lat)
        sch = FlowMatchEulerDiscreteScheduler.from_config(self.pipe.scheduler.config)
        sch.set_timesteps(steps, device=self.device)
        b = lat.shape[0]
        lat = torch.cat([cond.image_latents[:, :1], lat[:, 1:]], 1)
        for t in sch.timesteps:
            tt = t.expand(b)
            v = self._forward(lat, tt, *self._text(False))
            if self.guidance_scale > 1:
                uncond = self._forward(lat, tt, *self._text(True))
                v = uncond + self.guidance_scale * (v - uncond)
            rest = sch.step(v[:, 1:], t, lat[:, 1:], return_dict=False)[0]
            lat = torch.cat([lat[:, :1], rest.to(self.dtype)], 1)
        return self.normalize_first_frames(lat)

    def normalize_first_frames(self, lat: Tensor) -> Tensor:
        """The pipeline's ``normalize_first_frame``, out of place and per video: the first 4 latent
        frames rescaled to the mean/std of the next (up to 5), within its clamps. The pipeline
        takes the reference statistics over the whole batch; one video per call, as
        :meth:`generate` runs it, is the same. Unchanged below 5 latent frames (the pipeline then
        gives NaN). Shape: ``(B,F_lat,C,h,w)``."""
        f = lat.shape[1]
        if f < 5:
            return lat
        norm = self.pipe.adaptive_mean_std_normalization
        first = [
            norm(lat[i : i + 1, :4], lat[i : i + 1, 4 : 4 + min(5, f - 1)]) for i in range(len(lat))
        ]
        return torch.cat([torch.cat(first), lat[:, 4:]], 1)

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own ``__call__`` on the 8-bit working-size photo (PIL, as a user would):
        its posterior sample, CFG and Euler steps, ``normalize_first_frame``, decoding.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        text = {}
        for pre in ("", "negative_"):
            qwen, clip = self._text(bool(pre))
            cu = torch.tensor([0, qwen.shape[1]], dtype=torch.int32, device=self.device)
            text.update({f"{pre}prompt_embeds_qwen": qwen, f"{pre}prompt_embeds_clip": clip,
                         f"{pre}prompt_cu_seqlens": cu})  # fmt: skip
        videos = [
            run_pipeline(
                self,
                seed + i,
                image=photo,
                height=self.height,
                width=self.width,
                num_frames=frames,
                num_inference_steps=steps,
                guidance_scale=self.guidance_scale,
                **text,
            )  # fmt: skip
            for i, photo in enumerate(working_photos(self, x))  # one photo per pipeline call
        ]
        return torch.cat(videos)
