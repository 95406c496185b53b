"""The ``svd`` adapter: the differentiable pieces the loss sees (CLIP and VAE conditioning, the
EDM-preconditioned denoiser). The model and the choices made are in the family's docstring
(:mod:`stillguard.adapters.svd`)."""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS
from .._shared.generate import check_image
from .._shared.load import adopt_pipeline
from ..base import Adapter, Conditioning, Denoised
from .capture import SVDCapture
from .generate import SVDVideo
from .load import DEFAULTS, SVDLoading

logger = logging.getLogger(__name__)

P_MEAN, P_STD = 0.7, 1.6


@ADAPTERS.register("svd")
class SVD(SVDLoading, SVDCapture, SVDVideo, Adapter):
    """Stable Video Diffusion image-to-video: spatio-temporal UNet, EDM v-prediction, Euler."""

    capabilities = frozenset(
        {"hidden-states", "attention-temporal", "attention-spatial", "vae-features", "image-embeds"}
    )
    default_model = "stabilityai/stable-video-diffusion-img2vid-xt"
    real_models = {
        "stabilityai/stable-video-diffusion-img2vid-xt": "svd-img2vid-xt",
        "stabilityai/stable-video-diffusion-img2vid": "svd-img2vid",
    }

    def __init__(
        self,
        pipe: Any,
        *,
        model_id: str,
        settings: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        adopt_pipeline(self, pipe, model_id, device, dtype, pipe.vae, pipe.unet, pipe.image_encoder)
        s = {**DEFAULTS, **settings}
        self.height, self.width = int(s["height"]), int(s["width"])
        self.num_frames = int(s.get("num_frames") or pipe.unet.config.num_frames)
        self.opt_num_frames = int(s.get("opt_num_frames") or self.num_frames)
        self.num_inference_steps = int(s["num_inference_steps"])
        self.fps, self.motion_bucket_id = int(s["fps"]), int(s["motion_bucket_id"])
        self.noise_aug_strength = float(s["noise_aug_strength"])
        self.min_guidance_scale = float(s["min_guidance_scale"])
        self.max_guidance_scale = float(s["max_guidance_scale"])
        fe = pipe.feature_extractor
        self._mean = torch.tensor(fe.image_mean, device=device, dtype=dtype).view(1, 3, 1, 1)
        self._std = torch.tensor(fe.image_std, device=device, dtype=dtype).view(1, 3, 1, 1)

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sf = self.pipe.vae_scale_factor
        ch = self.pipe.unet.config.in_channels // 2
        return (batch, self.opt_num_frames, ch, self.height // sf, self.width // sf)

    def clip_pixels(self, x: Tensor) -> Tensor:
        """What CLIP sees: the pipeline's antialiased resize + normalisation, in torch.

        Shape:
            ``(B,3,H,W)`` in [0,1] -> ``(B,3,S,S)`` normalised, ``S`` the CLIP image size.
        """
        from diffusers.pipelines.stable_video_diffusion.pipeline_stable_video_diffusion import (
            _resize_with_antialiasing,
        )

        size = self.pipe.image_encoder.config.image_size
        img = (_resize_with_antialiasing(x * 2 - 1, (size, size)) + 1) / 2
        return (img - self._mean) / self._std

    def encode(self, x: Tensor, *, generator: torch.Generator | None = None) -> Conditioning:
        """CLIP image embedding and the unscaled VAE image latent, as the pipeline builds them.

        Args:
            x: image ``(B,3,H,W)`` in [0,1], resized to the working size first.
            generator: draws the ``noise_aug_strength`` noise; ``None`` adds none.

        Shape:
            ``image_latents (B,F,C,h,w)`` (unscaled, repeated), ``first_latent (B,C,h,w)``,
            ``image_embeds (B,1,D)``, ``extra["added_time_ids"] (B,3)``.
        """
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype))
        embeds = self.pipe.image_encoder(self.clip_pixels(img)).image_embeds.unsqueeze(1)
        pixels = img * 2 - 1
        if generator is not None:
            noise = torch.randn(pixels.shape, generator=generator, device=generator.device)
            pixels = pixels + self.noise_aug_strength * noise.to(self.device, self.dtype)
        first = self.pipe.vae.encode(pixels).latent_dist.mode()
        ids = [self.fps - 1, self.motion_bucket_id, self.noise_aug_strength]
        ids = torch.tensor([ids], device=self.device, dtype=self.dtype).repeat(x.shape[0], 1)
        return Conditioning(
            image_latents=first.unsqueeze(1).repeat(1, self.opt_num_frames, 1, 1, 1),
            first_latent=first,
            image_embeds=embeds,
            extra={"added_time_ids": ids},
        )

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> scaled posterior-mode latents, frame by frame. ``(B,F,3,H,W)`` -> ``(B,F,C,h,w)``."""
        if video.ndim != 5 or video.shape[2] != 3:
            raise InputError(f"expected a video (B, F, 3, H, W), got {tuple(video.shape)}")
        frames = self.prepare(video.to(self.device, self.dtype).flatten(0, 1))
        lat = (
            self.pipe.vae.encode(frames * 2 - 1).latent_dist.mode()
            * self.pipe.vae.config.scaling_factor
        )
        return lat.unflatten(0, video.shape[:2])

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 0.25·ln σ`` with ``ln σ ~ N(0.7, 1.6²)`` clamped to the scheduler's σ range. Shape ``(batch,)``."""
        cfg = self.pipe.scheduler.config
        log_sigma = (
            torch.randn(batch, generator=generator, device=generator.device) * P_STD + P_MEAN
        )
        log_sigma = log_sigma.clamp(
            torch.tensor(cfg.sigma_min).log(), torch.tensor(cfg.sigma_max).log()
        )
        return (0.25 * log_sigma).to(self.device)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """One EDM-preconditioned UNet call (conditional, no CFG).

        ``σ = exp(4·t)``; ``noisy = z0 + σ·noise``; the UNet sees ``noisy/sqrt(σ²+1)`` next to the
        unscaled image latents, timestep ``t`` and the CLIP embedding. ``pred`` is the raw UNet
        output F (v-parameterisation), ``x0 = noisy/(σ²+1) − σ/sqrt(σ²+1)·F`` (the Euler
        scheduler's), and ``target = (noise − σ·z0)/sqrt(σ²+1)`` is the F for which ``x0 = z0``,
        so ``mse(pred, target)`` is the EDM loss with its λ(σ) weighting. ``z0`` defaults to
        ``scaling_factor · first_latent`` repeated over the frames (it carries the gradient of ``x``).

        Shape:
            timestep ``(B,)`` or scalar (UNet units); noise, z0 and outputs ``(B,F,C,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        lat = cond.image_latents
        if z0 is None:
            z0 = cond.first_latent.unsqueeze(1) * self.pipe.vae.config.scaling_factor
            z0 = z0.expand(-1, lat.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        if z0.shape[1] != lat.shape[1]:
            lat = cond.first_latent.unsqueeze(1).expand(-1, z0.shape[1], -1, -1, -1)
        b = z0.shape[0]
        # sigma and the UNet timestep stay float32 (as the scheduler's), the rest in self.dtype
        t = torch.as_tensor(timestep, device=self.device, dtype=torch.float32).reshape(-1).expand(b)
        sigma32 = torch.exp(4 * t).view(-1, 1, 1, 1, 1)
        sigma, scale = sigma32.to(self.dtype), (sigma32**2 + 1).rsqrt().to(self.dtype)
        noisy = z0 + sigma * noise.to(self.device, self.dtype)
        pred = self.pipe.unet(
            torch.cat([noisy * scale, lat], 2),
            t,
            encoder_hidden_states=cond.image_embeds,
            added_time_ids=cond.extra["added_time_ids"],
            return_dict=False,
        )[0]
        x0 = noisy * scale**2 - sigma * scale * pred
        target = (noise.to(self.device, self.dtype) - sigma * z0) * scale
        return Denoised(pred=pred, target=target, x0=x0, z0=z0, noisy=noisy)
