"""The ``ltx-i2v`` adapter: the differentiable pieces the loss sees (the photo's latent on frame 0,
timestep 0 on its tokens, denoise, rollout). The model, the options and the choices made are in the
family's docstring (:mod:`stillguard.adapters.ltx`)."""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS
from .._shared.flow import euler_scheduler, keyed_randn, shift_mu
from .._shared.frame0 import frame0_denoise
from .._shared.generate import check_image
from .._shared.latents import LTXLatents, posterior_latent
from .._shared.load import adopt_pipeline
from .._shared.settings import check_video_size
from ..base import Adapter, Conditioning, Denoised
from .capture import LTXCapture
from .generate import LTXVideo
from .load import LTXLoading

SAMPLE_MODES = ("sample", "mode")


@ADAPTERS.register("ltx-i2v")
class LTXI2V(LTXLoading, LTXCapture, LTXVideo, LTXLatents, Adapter):
    """LTX-Video: first latent frame replaced by the photo, timestep 0 on its tokens."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})
    default_model = "Lightricks/LTX-Video"
    real_models = {
        "Lightricks/LTX-Video": "ltx-video-0.9.0",
        "Lightricks/LTX-Video-0.9.7-dev": "ltx-video-0.9.7-13b",
        "Lightricks/LTX-Video-0.9.7-distilled": "ltx-video-0.9.7-13b",
    }

    def __init__(
        self,
        pipe: Any,
        *,
        model_id: str,
        prompt: dict[str, Tensor],
        settings: dict,
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        adopt_pipeline(self, pipe, model_id, device, dtype, pipe.vae, pipe.transformer)
        self.height = int(settings.get("height", 512))
        self.width = int(settings.get("width", 704))
        self.num_frames = int(settings.get("num_frames", 161))
        self.opt_num_frames = int(settings.get("opt_num_frames") or self.num_frames)
        self.frame_rate = int(settings.get("frame_rate", 25))
        self.guidance_scale = float(settings.get("guidance_scale", 3.0))
        self.num_inference_steps = int(settings.get("num_inference_steps", 50))
        self.decode_timestep = float(settings.get("decode_timestep", 0.0))
        self.decode_noise_scale = settings.get("decode_noise_scale")
        self.condition_sample = str(settings.get("condition_sample", "sample"))
        self.condition_noise = float(settings.get("condition_noise", 0.0))
        if self.condition_sample not in SAMPLE_MODES or self.condition_noise < 0:
            raise InputError(
                f"condition_sample must be one of {SAMPLE_MODES} and condition_noise >= 0, got "
                f"{self.condition_sample!r} and {self.condition_noise}"
            )
        tr, sr = pipe.vae_temporal_compression_ratio, pipe.vae_spatial_compression_ratio
        check_video_size((self.num_frames, self.opt_num_frames), tr, self.height, self.width, sr)
        self.prompt = {k: v.to(device) for k, v in prompt.items()}

    # ------------------------------------------------------------------ helpers
    def _text(self, batch: int, cfg: bool) -> tuple[Tensor, Tensor]:
        p = self.prompt
        e, m = p["prompt_embeds"].to(self.dtype), p["prompt_attention_mask"]
        e, m = e.expand(batch, -1, -1), m.expand(batch, -1)
        if cfg:
            ne = p["negative_prompt_embeds"].to(self.dtype).expand(batch, -1, -1)
            nm = p["negative_prompt_attention_mask"].expand(batch, -1)
            e, m = torch.cat([ne, e]), torch.cat([nm, m])
        return e, m

    def _forward(self, lat: Tensor, t: Tensor, embeds: Tensor, mask: Tensor) -> Tensor:
        """Velocity for latents ``(B,F,C,h,w)`` at timestep ``t`` ``(B,)``; 0 on frame-0 tokens."""
        b, f, c, h, w = lat.shape
        pipe = self.pipe
        tokens = pipe._pack_latents(
            lat.transpose(1, 2),
            pipe.transformer_spatial_patch_size,
            pipe.transformer_temporal_patch_size,
        )
        frame0 = torch.zeros(f, h, w, device=lat.device, dtype=lat.dtype)
        frame0[0] = 1
        timestep = t.to(lat.dtype).view(-1, 1) * (1 - frame0.flatten()[None])
        tr, sr = pipe.vae_temporal_compression_ratio, pipe.vae_spatial_compression_ratio
        out = pipe.transformer(
            hidden_states=tokens,
            encoder_hidden_states=embeds,
            timestep=timestep,
            encoder_attention_mask=mask,
            num_frames=f,
            height=h,
            width=w,
            rope_interpolation_scale=(tr / self.frame_rate, sr, sr),
            return_dict=False,
        )[0]
        return pipe._unpack_latents(
            out, f, h, w, pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        ).transpose(1, 2)

    def _cond(self, x: Tensor | Conditioning, noise: Tensor) -> Conditioning:
        if isinstance(x, Conditioning):
            return x
        check_image(x)
        return self._encode(x, None, (x, noise))

    def _frame0(self, cond: Conditioning, sigma: Tensor, noise: Tensor) -> Tensor:
        """The conditioning frame ``(B,C,h,w)``, with ``condition_noise·σ²`` noise if configured."""
        c0 = cond.image_latents[:, 0]
        if not self.condition_noise:
            return c0
        # keyed by the exact inputs only: the latent of a batched encode differs in float rounding
        eps = keyed_randn(c0.shape, noise, sigma).to(c0)
        return c0 + self.condition_noise * sigma.view(-1, 1, 1, 1) ** 2 * eps

    # ------------------------------------------------------------------ differentiable pieces
    def encode(self, x: Tensor, *, generator: torch.Generator | None = None) -> Conditioning:
        """Image -> 1-frame VAE encode -> posterior draw (or mode) -> normalised, repeated latents.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)`` (frame 0 is what the
            transformer sees; the rest repeat it, as the pipeline's ``init_latents``),
            ``first_latent (B,C,h,w)`` (raw VAE latent).
        """
        return self._encode(x, generator, (x,))

    def _encode(
        self, x: Tensor, generator: torch.Generator | None, keys: tuple[Tensor, ...]
    ) -> Conditioning:
        """:meth:`encode`; without ``generator`` image ``b``'s posterior draw is keyed by the
        ``b``-th items of ``keys`` (so a batch draws what its images draw alone)."""
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype)) * 2 - 1
        dist = self.pipe.vae.encode(img.unsqueeze(2)).latent_dist
        lat = posterior_latent(dist, self.condition_sample == "sample", generator, keys)
        return self.condition_on_latent(lat[:, :, 0])

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−σ)·z0 + σ·noise`` on frames 1+, frame 0 = the photo's latent; ``pred = v``.

        Shape:
            timestep ``(B,)`` or scalar (``1000·σ``); noise, z0 and every output ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._cond(x, noise)
        if z0 is None:
            z0 = cond.image_latents
            if z0.shape[1] != noise.shape[1]:
                z0 = z0[:, :1].expand(-1, noise.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(z0.shape[0])
        sigma = (t / 1000).to(self.dtype)
        text = self._text(z0.shape[0], False)
        c0 = self._frame0(cond, sigma, noise)
        return frame0_denoise(c0, z0, noise, sigma, lambda noisy: self._forward(noisy, t, *text))

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable Euler steps of the pipeline's schedule (CFG as configured).

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)`` (frame 0 = condition).
        """
        lat = noise.to(self.device, self.dtype)
        cond = self._cond(x, lat)
        b, f, _, h, w = lat.shape
        sigmas = np.linspace(1.0, 1 / steps, steps)
        mu = shift_mu(self.pipe.scheduler, f * h * w)
        sch = euler_scheduler(self.pipe.scheduler, sigmas, self.device, mu)
        cfg = self.guidance_scale > 1
        embeds, mask = self._text(b, cfg)
        for i, t in enumerate(sch.timesteps):
            sigma = sch.sigmas[i].to(self.device, self.dtype).expand(b)
            lat = torch.cat([self._frame0(cond, sigma, noise).unsqueeze(1), lat[:, 1:]], 1)
            inp = torch.cat([lat, lat]) if cfg else lat
            v = self._forward(inp, t.expand(inp.shape[0]), embeds, mask)
            if cfg:
                uncond, text = v.chunk(2)
                v = uncond + self.guidance_scale * (text - uncond)
            step = (sch.sigmas[i + 1] - sch.sigmas[i]).to(self.device, self.dtype)
            lat = torch.cat([lat[:, :1], lat[:, 1:] + step * v[:, 1:]], 1)
        return lat

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "condition_sample": self.condition_sample,
            "condition_noise": self.condition_noise,
        }
