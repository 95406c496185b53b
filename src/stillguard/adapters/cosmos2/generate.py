"""Sampling with ``cosmos2-i2v`` (a mixin): the differentiable rollout (the pipeline's EDM Euler
loop on Karras sigmas, redone in torch) and generation through the pipeline's own ``__call__``
with the guardrail the settings ask for (:mod:`.guardrail`)."""

from __future__ import annotations

import copy
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_photos
from ..base import Conditioning
from .guardrail import guardrail_for


class Cosmos2Video(VideoGeneration):
    """:meth:`rollout` and :meth:`generate` of :class:`~.adapter.Cosmos2I2V`."""

    s: Any
    pipe: Any

    def sampler_sigmas(self, steps: int) -> list[float]:
        """The pipeline's ``steps + 1`` EDM sigmas: Karras from ``sigma_max`` down to
        ``sigma_min``, the final 0 replaced by ``sigma_min`` (``final_sigmas_type``). Computed with
        real CPU numbers even on the meta device or under fake tensors (a plan)."""
        from torch._subclasses.fake_tensor import unset_fake_temporarily

        with unset_fake_temporarily():
            sch = copy.deepcopy(self.pipe.scheduler)
            sch.set_timesteps(sigmas=np.linspace(0, 1, steps), device="cpu")
            sigmas = [float(v) for v in sch.sigmas]
        if sch.config.get("final_sigmas_type") == "sigma_min":
            sigmas[-1] = sigmas[-2]
        return sigmas

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable Euler steps of the pipeline, CFG ``x0_c + g·(x0_c − x0_u)``,
        from ``x = σ_max·noise``; the condition replaces frame 0 of every model input and x0.

        Shape: noise ``(B,F_lat,C,h,w)`` -> the final latent (at σ_min), same shape.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._cond(x, noise)
        b = noise.shape[0]
        c0 = cond.image_latents[:, :1].expand(b, -1, -1, -1, -1)
        sigmas = self.sampler_sigmas(steps)
        lat = noise * float(self.pipe.scheduler.config.sigma_max)
        cfg = self.s.guidance_scale > 1

        def x0(inp: Tensor, t: Tensor, negative: bool) -> Tensor:
            pred = self._forward(inp, t.expand(b), self._embeds(b, negative))
            out = (1 - t) * lat - t * pred
            return torch.cat([c0, out[:, 1:]], 1)

        for i in range(steps):
            sigma = sigmas[i]
            t = torch.tensor(sigma / (sigma + 1), device=self.device, dtype=self.dtype)
            inp = torch.cat([c0, ((1 - t) * lat)[:, 1:]], 1)
            guided = x0(inp, t, False)
            if cfg:
                guided = guided + self.s.guidance_scale * (guided - x0(inp, t, True))
            lat = lat + (sigmas[i + 1] - sigma) * (lat - guided) / sigma
        return lat

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own ``__call__`` on each 8-bit working-size photo (PIL, as a user would
        pass it), with the guardrail of the settings. ``(B,3,H,W)`` -> ``(B,F,3,H,W)``."""
        guardrail_for(self.pipe, self.s.guardrail)
        b, videos = x.shape[0], []
        for i, photo in enumerate(working_photos(self, x)):
            videos.append(run_pipeline(
                self, seed + i, image=photo, prompt_embeds=self._embeds(b)[i : i + 1],
                negative_prompt_embeds=self._embeds(b, True)[i : i + 1], height=self.height,
                width=self.width, num_frames=frames, num_inference_steps=steps,
                guidance_scale=self.s.guidance_scale, fps=self.s.fps,
                sigma_conditioning=self.s.sigma_conditioning,
            ))  # fmt: skip
        return torch.cat(videos)
