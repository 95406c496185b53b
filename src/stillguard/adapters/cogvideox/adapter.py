"""The ``cogvideox-i2v`` adapter: the differentiable pieces the loss sees (encode, condition,
denoise, rollout). The model, how the photo conditions it and the choices made are in the family's
docstring (:mod:`stillguard.adapters.cogvideox`)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS
from .._shared.generate import check_image, video_pixels
from .._shared.load import adopt_pipeline
from ..base import Adapter, Conditioning, Denoised
from .capture import CogVideoXCapture
from .generate import CogVideoXVideo
from .load import CogVideoXLoading

logger = logging.getLogger(__name__)


@ADAPTERS.register("cogvideox-i2v")
class CogVideoXI2V(CogVideoXLoading, CogVideoXCapture, CogVideoXVideo, Adapter):
    """CogVideoX-I2V: joint text+video 3D attention transformer, v-prediction, DDIM sampling."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})
    default_model = "THUDM/CogVideoX-5b-I2V"
    real_models = {
        "THUDM/CogVideoX-5b-I2V": "cogvideox-5b-i2v",
        "THUDM/CogVideoX1.5-5B-I2V": "cogvideox1.5-5b-i2v",
    }

    def __init__(
        self,
        pipe: Any,
        *,
        model_id: str,
        prompt_embeds: Tensor,
        negative_prompt_embeds: Tensor | None,
        settings: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        from diffusers import CogVideoXDDIMScheduler

        adopt_pipeline(self, pipe, model_id, device, dtype, pipe.vae, pipe.transformer)
        tr, vae = pipe.transformer.config, pipe.vae.config
        sf = pipe.vae_scale_factor_spatial
        self.height = int(settings.get("height") or tr.sample_height * sf)
        self.width = int(settings.get("width") or tr.sample_width * sf)
        self.num_frames = int(settings.get("num_frames") or tr.sample_frames)
        self.opt_num_frames = int(settings.get("opt_num_frames") or self.num_frames)
        self.guidance_scale = float(settings.get("guidance_scale", 6.0))
        self.num_inference_steps = int(settings.get("num_inference_steps", 50))
        for n in (self.num_frames, self.opt_num_frames):
            if (n - 1) % vae.temporal_compression_ratio:
                raise InputError(
                    f"num_frames={n} must be 1 + a multiple of {vae.temporal_compression_ratio}"
                )
        pe = prompt_embeds.to(device, dtype)
        self.prompt_embeds = pe
        ne = negative_prompt_embeds
        self.negative_prompt_embeds = torch.zeros_like(pe) if ne is None else ne.to(device, dtype)
        self._rollout_scheduler = CogVideoXDDIMScheduler.from_config(pipe.scheduler.config)
        self._rope: dict[int, Any] = {}

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, num_frames: int) -> int:
        """Latent frames of ``num_frames`` video frames, before any temporal-patch padding."""
        return (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _extra_frames(self, latent_frames: int) -> int:
        """Front latent frames the pipeline adds so that ``patch_size_t`` divides the count."""
        p_t = self.pipe.transformer.config.patch_size_t
        return (-latent_frames) % p_t if p_t else 0

    def _video_frames(self, num_frames: int) -> int:
        """Latent frames the denoiser sees for ``num_frames`` video frames (padding included)."""
        lf = self._latent_frames(num_frames)
        return lf + self._extra_frames(lf)

    def _scale(self, lat: Tensor) -> Tensor:
        """VAE latent -> image latent (1.5 divides by the factor, ``invert_scale_latents``)."""
        sf = self.pipe.vae_scaling_factor_image
        return lat / sf if self.pipe.vae.config.invert_scale_latents else lat * sf

    def _scale_video(self, lat: Tensor) -> Tensor:
        """VAE latent -> video latent: the inverse of the pipeline's ``decode_latents``."""
        return lat * self.pipe.vae_scaling_factor_image

    def _pad(self, scaled: Tensor, frames: int) -> Tensor:
        """Scaled 1-frame latent ``(B,C,h,w)`` -> zero-padded ``(B,F_lat,C,h,w)`` as the pipeline.

        ``__call__`` already pads ``frames`` to a multiple of ``patch_size_t``; for other counts
        ``prepare_latents``' own rule (repeat the leading frames) applies."""
        pad = scaled.new_zeros(scaled.shape[0], frames - 1, *scaled.shape[1:])
        lat = torch.cat([scaled.unsqueeze(1), pad], 1)
        p_t = self.pipe.transformer.config.patch_size_t
        if p_t is not None and frames % p_t:
            lat = torch.cat([lat[:, : frames % p_t], lat], 1)
        return lat

    def _embeds(self, batch: int, negative: bool = False) -> Tensor:
        e = self.negative_prompt_embeds if negative else self.prompt_embeds
        return e.expand(batch, -1, -1) if e.shape[0] == 1 else e

    def _forward(self, latents: Tensor, image_latents: Tensor, t: Tensor, embeds: Tensor) -> Tensor:
        frames = latents.shape[1]
        if frames not in self._rope:
            self._rope[frames] = self.pipe._prepare_rotary_positional_embeddings(
                self.height, self.width, frames, self.device
            )
        cfg = self.pipe.transformer.config
        ofs = None if cfg.ofs_embed_dim is None else latents.new_full((1,), 2.0)
        return self.pipe.transformer(
            hidden_states=torch.cat([latents, image_latents], 2),
            encoder_hidden_states=embeds,
            timestep=t.expand(latents.shape[0]),
            ofs=ofs,
            image_rotary_emb=self._rope[frames],
            return_dict=False,
        )[0]

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        frames = self._video_frames(self.opt_num_frames)
        sf = self.pipe.vae_scale_factor_spatial
        ch = self.pipe.transformer.config.in_channels // 2
        return (batch, frames, ch, self.height // sf, self.width // sf)

    def encode(self, x: Tensor) -> Conditioning:
        """Image -> 1-frame VAE encode (posterior mode) -> scaled, zero-padded image latents.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)``, ``first_latent (B,C,h,w)``.
        """
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype)) * 2 - 1
        first = self.pipe.vae.encode(img.unsqueeze(2)).latent_dist.mode()[:, :, 0]
        return self.condition_on_latent(first)

    def condition_on_latent(self, first_latent: Tensor) -> Conditioning:
        """The conditioning the pipeline builds from an (unscaled) 1-frame image latent.

        Lets latent-space studies (``benchmarks/latent_bound.py``) move the latent directly.

        Shape:
            first_latent ``(B,C,h,w)`` -> ``image_latents (B,F_lat,C,h,w)``.
        """
        frames = self._video_frames(self.opt_num_frames)
        return Conditioning(
            image_latents=self._pad(self._scale(first_latent), frames), first_latent=first_latent
        )

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> scaled posterior-mode latent, padded as the pipeline pads (1.5: a copy of the
        first latent frame in front). Shape: ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        pixels = video_pixels(self, video, self.pipe.vae_scale_factor_temporal)
        lat = self.pipe.vae.encode(pixels).latent_dist.mode()
        lat = self._scale_video(lat.permute(0, 2, 1, 3, 4))
        extra = self._extra_frames(lat.shape[1])
        return torch.cat([lat[:, :1].expand(-1, extra, -1, -1, -1), lat], 1) if extra else lat

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """Uniform integer timesteps in ``[0, num_train_timesteps)``. Shape: ``(batch,)``."""
        n = self.pipe.scheduler.config.num_train_timesteps
        return torch.randint(0, n, (batch,), generator=generator, device=generator.device).to(
            self.device
        )

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = add_noise(z0, noise, t)``; ``pred`` = v; ``target = get_velocity(z0, noise, t)``.

        ``z0`` defaults to the image's video latent (``scaling_factor·first_latent``) repeated over
        every latent frame (it keeps the gradient of ``x``; pass a detached one to cut it).
        ``x0 = sqrt(ᾱ)·noisy − sqrt(1−ᾱ)·v``. With ``patch_size_t`` a ``z0`` must have a multiple
        of it as frame count (as :meth:`encode_video` gives).

        Shape:
            timestep ``(B,)`` or scalar; noise, z0 and every output ``(B,F_lat,C,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        image_latents = cond.image_latents
        if z0 is None:
            still = self._scale_video(cond.first_latent).unsqueeze(1)
            z0 = still.expand(-1, image_latents.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        if z0.shape[1] != image_latents.shape[1]:
            if self._extra_frames(z0.shape[1]):
                raise InputError(
                    f"z0 has {z0.shape[1]} latent frames; this model patches "
                    f"{self.pipe.transformer.config.patch_size_t} latent frames together: pad "
                    "it as encode_video does"
                )
            image_latents = self._pad(image_latents[:, 0], z0.shape[1])
        t = torch.as_tensor(timestep, device=self.device).long().reshape(-1).expand(z0.shape[0])
        noise = noise.to(self.device, self.dtype)
        sch = self.pipe.scheduler
        noisy = sch.add_noise(z0, noise, t)
        pred = self._forward(noisy, image_latents, t, self._embeds(z0.shape[0]))
        a = sch.alphas_cumprod.to(self.device, self.dtype)[t].view(-1, 1, 1, 1, 1)
        x0 = a.sqrt() * noisy - (1 - a).sqrt() * pred
        return Denoised(pred=pred, target=sch.get_velocity(z0, noise, t), x0=x0, z0=z0, noisy=noisy)

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable DDIM steps (CFG as configured) from pure ``noise``.

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        sch = self._rollout_scheduler
        sch.set_timesteps(steps, device=self.device)
        lat = noise.to(self.device, self.dtype) * sch.init_noise_sigma
        b, use_cfg = lat.shape[0], self.guidance_scale > 1
        img = (
            cond.image_latents
            if lat.shape[1] == cond.image_latents.shape[1]
            else self._pad(cond.image_latents[:, 0], lat.shape[1])
        )
        embeds = self._embeds(b)
        if use_cfg:
            img, embeds = torch.cat([img, img]), torch.cat([self._embeds(b, True), embeds])
        for t in sch.timesteps:
            inp = sch.scale_model_input(torch.cat([lat, lat]) if use_cfg else lat, t)
            v = self._forward(inp, img, t, embeds)
            if use_cfg:
                uncond, text = v.chunk(2)
                v = uncond + self.guidance_scale * (text - uncond)
            lat = sch.step(v, t, lat, return_dict=False)[0].to(self.dtype)
        return lat
