"""The ``hunyuan-i2v`` adapter: the differentiable pieces the loss sees (the photo's VAE latent by
latent concat or token replace, denoise, rollout). The model, what this adapter does *not*
differentiate (the LLaVA text-image path) and the choices made are in the family's docstring
(:mod:`stillguard.adapters.hunyuan`)."""

from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...errors import CapabilityError, InputError
from ...registry import ADAPTERS
from .._shared.flow import euler_scheduler, flow_timesteps
from .._shared.generate import check_image, video_pixels
from .._shared.load import adopt_pipeline
from ..base import Adapter, Conditioning, Denoised
from .capture import HunyuanCapture
from .generate import HunyuanVideo
from .load import HunyuanLoading

logger = logging.getLogger(__name__)
PATHS = ("frozen", "refuse")


@ADAPTERS.register("hunyuan-i2v")
class HunyuanI2V(HunyuanLoading, HunyuanCapture, HunyuanVideo, Adapter):
    """HunyuanVideo-I2V: MM-DiT joint attention; image by latent concat or first-frame replacement."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})
    default_model = "hunyuanvideo-community/HunyuanVideo-I2V"
    real_models = {
        "hunyuanvideo-community/HunyuanVideo-I2V": "hunyuan-video-i2v",
        "hunyuanvideo-community/HunyuanVideo-I2V-33ch": "hunyuan-video-i2v-33ch",
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
        self.kind = pipe.transformer.config.image_condition_type
        if self.kind not in ("latent_concat", "token_replace"):
            raise InputError(
                f"{model_id} is not an image-to-video HunyuanVideo transformer "
                f"(image_condition_type={self.kind!r})"
            )
        self.drop = 4 if self.kind == "latent_concat" else 0  # frames the pipeline drops
        self.height = int(settings.get("height", 720))
        self.width = int(settings.get("width", 1280))
        self.pipe_frames = int(settings.get("num_frames", 129))
        self.num_frames = self.pipe_frames - self.drop
        self.opt_num_frames = int(settings.get("opt_num_frames") or self.pipe_frames)
        self.num_inference_steps = int(settings.get("num_inference_steps", 50))
        self.guidance_scale = float(settings.get("guidance_scale", 1.0))
        self.true_cfg_scale = float(settings.get("true_cfg_scale", 1.0))
        self.text_image_path = str(settings.get("text_image_path", "frozen"))
        tr, sr = pipe.vae_scale_factor_temporal, pipe.vae_scale_factor_spatial
        if self.text_image_path not in PATHS:
            raise InputError(
                f"text_image_path must be one of {PATHS}, got {self.text_image_path!r}"
            )
        if self.text_image_path == "refuse":
            raise CapabilityError(
                "hunyuan-i2v cannot differentiate the LLaVA text-image path (the prompt embedding "
                "is precomputed), and text_image_path='refuse' forbids an attack that ignores it: "
                "use text_image_path='frozen' to attack the VAE-latent path only, or another target"
            )
        for n in (self.pipe_frames, self.opt_num_frames):
            if (n - 1) % tr:
                raise InputError(f"num_frames={n} (pipeline frames) must be 1 + a multiple of {tr}")
        if self.height % 16 or self.width % 16 or self.height % sr:
            raise InputError("height and width must be multiples of 16")
        self.prompt = {k: v.to(device) for k, v in prompt.items()}
        if self.is_real and device.type != "meta":
            logger.warning(
                "hunyuan-i2v: the photo's LLaVA path is frozen (precomputed prompt "
                "embeddings); the attack sees only the VAE-latent path"
            )

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, pipe_frames: int) -> int:
        return (pipe_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _text(self, batch: int, negative: bool = False) -> tuple[Tensor, Tensor, Tensor]:
        pre = "negative_" if negative else ""
        p = self.prompt
        return (
            p[pre + "prompt_embeds"].to(self.dtype).expand(batch, -1, -1),
            p[pre + "prompt_attention_mask"].to(self.dtype).expand(batch, -1),
            p[pre + "pooled_prompt_embeds"].to(self.dtype).expand(batch, -1),
        )

    def _forward(
        self, lat: Tensor, image_latents: Tensor, t: Tensor, negative: bool = False
    ) -> Tensor:
        """Velocity ``(B,F,C,h,w)`` for latents ``(B,F,C,h,w)`` at timestep ``t`` ``(B,)``."""
        b, f = lat.shape[:2]
        x = lat.transpose(1, 2)
        if self.kind == "latent_concat":
            mask = x.new_zeros(b, 1, *x.shape[2:])
            mask[:, :, 0] = 1
            x = torch.cat([x, image_latents.transpose(1, 2), mask], 1)
        else:
            x = torch.cat([image_latents[:, :1].transpose(1, 2), x[:, :, 1:]], 2)
        embeds, mask_t, pooled = self._text(b, negative)
        guidance = None
        if self.pipe.transformer.config.guidance_embeds:
            guidance = torch.full(
                (b,), self.guidance_scale * 1000.0, device=lat.device, dtype=lat.dtype
            )
        out = self.pipe.transformer(
            hidden_states=x,
            timestep=t.to(lat.dtype).expand(b),
            encoder_hidden_states=embeds,
            encoder_attention_mask=mask_t,
            pooled_projections=pooled,
            guidance=guidance,
            return_dict=False,
        )[0]
        return out.transpose(1, 2)

    def _conditioning(self, scaled: Tensor, first: Tensor, frames: int) -> Conditioning:
        lat = scaled.unsqueeze(1).expand(-1, frames, -1, -1, -1)
        if self.kind == "latent_concat":  # the pipeline zeroes frames 1+ of the concatenated latent
            lat = torch.cat([lat[:, :1], torch.zeros_like(lat[:, 1:])], 1)
        return Conditioning(image_latents=lat, first_latent=first)

    def _frames(self, cond: Conditioning, frames: int) -> Conditioning:
        if cond.image_latents.shape[1] == frames:
            return cond
        return self._conditioning(cond.image_latents[:, 0], cond.first_latent, frames)

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sr = self.pipe.vae_scale_factor_spatial
        ch = self.pipe.transformer.config.out_channels
        return (
            batch,
            self._latent_frames(self.opt_num_frames),
            ch,
            self.height // sr,
            self.width // sr,
        )

    def encode(self, x: Tensor) -> Conditioning:
        """Image -> 1-frame VAE encode (posterior mode, as the pipeline) × scaling factor.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)`` (latent concat: frame 0,
            zeros after; token replace: repeated), ``first_latent (B,C,h,w)`` (unscaled).
        """
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype)) * 2 - 1
        first = self.pipe.vae.encode(img.unsqueeze(2)).latent_dist.mode()[:, :, 0]
        return self.condition_on_latent(first)

    def condition_on_latent(self, first_latent: Tensor) -> Conditioning:
        """The conditioning from an unscaled 1-frame latent ``(B,C,h,w)``."""
        frames = self._latent_frames(self.opt_num_frames)
        return self._conditioning(first_latent * self.pipe.vae_scaling_factor, first_latent, frames)

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> scaled posterior-mode latent. Shape: ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        pixels = video_pixels(self, video, self.pipe.vae_scale_factor_temporal)
        lat = self.pipe.vae.encode(pixels).latent_dist.mode()
        return (lat * self.pipe.vae_scaling_factor).transpose(1, 2)

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 1000·σ``, σ = the scheduler's static shift of ``U(0.001, 0.999)``. Shape ``(batch,)``."""
        return flow_timesteps(self.pipe.scheduler, batch, generator, 0, self.device)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−σ)·z0 + σ·noise`` (frame 0 = the photo for token replace); ``pred = v``.

        Shape:
            timestep ``(B,)`` or scalar (``1000·σ``); noise, z0 and every output ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._frames(x if isinstance(x, Conditioning) else self.encode(x), noise.shape[1])
        if z0 is None:
            z0 = cond.image_latents[:, :1].expand(-1, noise.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        cond = self._frames(cond, z0.shape[1])
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(z0.shape[0])
        s = (t / 1000).to(self.dtype).view(-1, 1, 1, 1, 1)
        noisy = (1 - s) * z0 + s * noise
        target = noise - z0
        pred = self._forward(noisy, cond.image_latents, t)
        x0 = noisy - s * pred
        if self.kind == "token_replace":  # frame 0 is the photo, never stepped: no loss there
            c0 = cond.image_latents[:, :1]
            noisy, x0 = torch.cat([c0, noisy[:, 1:]], 1), torch.cat([c0, x0[:, 1:]], 1)
            target = torch.cat([pred[:, :1].detach(), target[:, 1:]], 1)
        return Denoised(pred=pred, target=target, x0=x0, z0=z0, noisy=noisy)

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable Euler steps of the pipeline (embedded guidance, true CFG).

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._frames(x if isinstance(x, Conditioning) else self.encode(x), noise.shape[1])
        sigmas = np.linspace(1.0, 0.0, steps + 1)[:-1]
        sch = euler_scheduler(self.pipe.scheduler, sigmas, self.device)
        still = cond.image_latents[:, :1].expand_as(noise)
        lat = noise * 0.999 + still * 0.001  # the pipeline's blend, before zeroing frames 1+
        for i, t in enumerate(sch.timesteps):
            v = self._forward(lat, cond.image_latents, t.expand(lat.shape[0]))
            if self.true_cfg_scale > 1:
                neg = self._forward(lat, cond.image_latents, t.expand(lat.shape[0]), True)
                v = neg + self.true_cfg_scale * (v - neg)
            step = (sch.sigmas[i + 1] - sch.sigmas[i]).to(self.device, self.dtype)
            lat = lat + step * v
            if self.kind == "token_replace":
                lat = torch.cat([cond.image_latents[:, :1], lat[:, 1:]], 1)
        return lat
