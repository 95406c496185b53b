"""Sampling with ``ltx2-i2v`` (a mixin): the differentiable rollout (the pipeline's Euler steps and
x0-space guidance, redone in torch) and generation through the pipeline's own ``__call__``.

What ``generate`` says about the photo's H.264 re-encode: with PyAV it runs the pipeline's codec at
``image_crf`` (the real path); without it the pipeline cannot, so it is called with ``image_crf=0``
and a warning says the video was made from the uncompressed photo (``describe()["codec"]`` is
``"skip"`` then). STG: on LTX-2.0 checkpoints (``perturbed_attn`` false) the STG pass returns the
conditional prediction exactly (diffusers 0.42.1 forwards the perturbation only to perturbed-attention
blocks; ``tests/test_adapter_ltx2.py`` checks it), so both the rollout and ``generate`` leave that
pass out: one transformer call a step fewer, the same video.
"""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor

from .._shared.flow import euler_scheduler, shift_mu
from .._shared.generate import VideoGeneration, run_pipeline, working_photos
from ..base import Conditioning
from .codec import pyav_missing

logger = logging.getLogger(__name__)


class LTX2Video(VideoGeneration):
    """:meth:`rollout` and :meth:`generate` of :class:`~.adapter.LTX2I2V`."""

    s: Any
    pipe: Any

    def _guided(
        self, lat: Tensor, audio: Tensor, t: Tensor, sigma: Tensor
    ) -> tuple[Tensor, Tensor]:
        """One guided step's velocities (video, audio), as the pipeline combines its passes on the
        x0 predictions ``x − σ·v``: CFG, STG (when it has an effect), modality isolation, rescale."""
        from diffusers.pipelines.ltx2.pipeline_ltx2_image2video import rescale_noise_cfg

        s, b = self.s, lat.shape[0]
        pos = self._ctx("positive", b)
        cfg = s.guidance_scale > 1 or s.audio_guidance_scale > 1

        def x0(v_a: tuple[Tensor, Tensor]) -> tuple[Tensor, Tensor]:
            return lat - sigma * v_a[0], audio - sigma * v_a[1]

        if cfg:
            neg = self._ctx("negative", b)
            both = type(pos)(*(torch.cat([n, p]) for n, p in zip(neg, pos, strict=True)))
            v, a = self._forward(torch.cat([lat, lat]), torch.cat([audio, audio]), t.repeat(2),
                                 t.repeat(2), both)  # fmt: skip
            (vu, vc), (au, ac) = v.chunk(2), a.chunk(2)
            (xu, yu), (xc, yc) = x0((vu, au)), x0((vc, ac))
            gv = xc + (s.guidance_scale - 1) * (xc - xu)
            ga = yc + (s.audio_guidance_scale - 1) * (yc - yu)
        else:
            xc, yc = x0(self._forward(lat, audio, t, t, pos))
            gv, ga = xc, yc
        if (s.stg_scale > 0 or s.audio_stg_scale > 0) and self.stg_has_effect:
            xs, ys = x0(
                self._forward(lat, audio, t, t, pos, spatio_temporal_guidance_blocks=s.stg_blocks)
            )
            gv, ga = gv + s.stg_scale * (xc - xs), ga + s.audio_stg_scale * (yc - ys)
        if s.modality_scale > 1 or s.audio_modality_scale > 1:
            xi, yi = x0(self._forward(lat, audio, t, t, pos, isolate_modalities=True))
            gv = gv + (s.modality_scale - 1) * (xc - xi)
            ga = ga + (s.audio_modality_scale - 1) * (yc - yi)
        if s.guidance_rescale > 0:
            gv = rescale_noise_cfg(gv, xc, guidance_rescale=s.guidance_rescale)
        if s.audio_guidance_rescale > 0:
            ga = rescale_noise_cfg(ga, yc, guidance_rescale=s.audio_guidance_rescale)
        return (lat - gv) / sigma, (audio - ga) / sigma

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable Euler steps of the pipeline's schedule and guidance, video and
        audio together (audio from keyed pure noise, see :meth:`audio_noise`); frame 0 = the
        condition throughout. Shape: noise ``(B,F_lat,C,h,w)`` -> final latent, same shape."""
        noise = noise.to(self.device, self.dtype)
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        b, f, _, h, w = noise.shape
        sch = euler_scheduler(
            self.pipe.scheduler, np.linspace(1.0, 1 / steps, steps), self.device,
            shift_mu(self.pipe.scheduler, f * h * w),
        )  # fmt: skip
        lat = torch.cat([cond.image_latents[:, :1].expand(b, -1, -1, -1, -1), noise[:, 1:]], 1)
        audio = self.audio_noise(noise)
        for i, t in enumerate(sch.timesteps):
            sigma = sch.sigmas[i].to(self.device, self.dtype)
            v, a = self._guided(lat, audio, t.to(self.device).expand(b), sigma)
            step = (sch.sigmas[i + 1] - sch.sigmas[i]).to(self.device, self.dtype)
            lat = torch.cat([lat[:, :1], lat[:, 1:] + step * v[:, 1:]], 1)
            audio = audio + step * a
        return lat

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own ``__call__`` on each 8-bit working-size photo (PIL, as a user would
        pass it; one call a photo, as the codec takes one PIL image). ``(B,3,H,W)`` ->
        ``(B,F,3,H,W)``."""
        s, p = self.s, self.prompt
        crf = s.image_crf
        if crf and pyav_missing() is not None:
            logger.warning(
                "ltx2-i2v generate: %s, so the pipeline cannot re-encode the photo with H.264 (CRF "
                "%d) as it does for users; these videos were made from the uncompressed photo",
                pyav_missing(), crf,
            )  # fmt: skip
            crf = 0
        stg = s.stg_scale if self.stg_has_effect else 0.0
        audio_stg = s.audio_stg_scale if self.stg_has_effect else 0.0
        videos = []
        for i, photo in enumerate(working_photos(self, x)):
            videos.append(run_pipeline(
                self, seed + i, image=photo, prompt_embeds=p["prompt_embeds"],
                prompt_attention_mask=p["prompt_attention_mask"],
                negative_prompt_embeds=p["negative_prompt_embeds"],
                negative_prompt_attention_mask=p["negative_prompt_attention_mask"],
                height=self.height, width=self.width, num_frames=frames,
                frame_rate=s.frame_rate, num_inference_steps=steps,
                guidance_scale=s.guidance_scale, stg_scale=stg, audio_stg_scale=audio_stg,
                spatio_temporal_guidance_blocks=s.stg_blocks, modality_scale=s.modality_scale,
                audio_modality_scale=s.audio_modality_scale, guidance_rescale=s.guidance_rescale,
                audio_guidance_scale=s.audio_guidance_scale,
                audio_guidance_rescale=s.audio_guidance_rescale,
                decode_timestep=s.decode_timestep, decode_noise_scale=s.decode_noise_scale,
                use_cross_timestep=s.use_cross_timestep, image_crf=crf,
            ))  # fmt: skip
        return torch.cat(videos)
