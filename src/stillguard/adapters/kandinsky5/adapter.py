"""The ``kandinsky5-i2v`` adapter: the differentiable pieces the loss sees (the photo's sampled
latent on frame 0, the mask channel, one global timestep, denoise). The model, the options and the
choices made are in the family's docstring (:mod:`stillguard.adapters.kandinsky5`). Latents are
``(B, F_lat, C, h, w)`` here and channels-last ``(B, F_lat, h, w, C)`` inside diffusers'
Kandinsky 5."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS
from .._shared.flow import flow_timesteps, keyed_randn
from .._shared.frame0 import frame0_denoise
from .._shared.generate import check_image, video_pixels
from .._shared.load import adopt_pipeline
from .._shared.settings import check_video_size
from ..base import Adapter, Conditioning, Denoised
from .capture import KandinskyCapture
from .generate import KandinskyVideo
from .load import KandinskyLoading

SAMPLE_MODES = ("sample", "mode")
#: latent frames the pipeline's ``normalize_first_frame`` needs (4 renormalised + 1 reference)
MIN_LATENT_FRAMES = 5


@ADAPTERS.register("kandinsky5-i2v")
class Kandinsky5I2V(KandinskyLoading, KandinskyCapture, KandinskyVideo, Adapter):
    """Kandinsky 5 image-to-video: latent frame 0 replaced by the photo's sampled latent."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})
    default_model = "kandinskylab/Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers"
    real_models = {
        "kandinskylab/Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers": "kandinsky-5.0-i2v-pro-sft-5s",
    }

    def __init__(
        self,
        pipe: Any,
        *,
        model_id: str,
        prompt: dict[str, Tensor],
        settings: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        adopt_pipeline(self, pipe, model_id, device, dtype, pipe.vae, pipe.transformer)
        self.height = int(settings.get("height", 512))
        self.width = int(settings.get("width", 768))
        self.num_frames = int(settings.get("num_frames", 121))
        self.opt_num_frames = int(settings.get("opt_num_frames") or self.num_frames)
        self.num_inference_steps = int(settings.get("num_inference_steps", 50))
        self.guidance_scale = float(settings.get("guidance_scale", 5.0))
        self.condition_sample = str(settings.get("condition_sample", "sample"))
        self.flow_shift = self._set_shift(settings.get("flow_shift"))
        self._check(pipe)
        self.prompt = {k: v.to(device) for k, v in prompt.items()}

    def _set_shift(self, shift: float | None) -> float:
        """The scheduler's static shift, replaced by ``shift`` when given (the shipped scheduler's
        10 is derived from the official config, unverified against the hub folder)."""
        from diffusers import FlowMatchEulerDiscreteScheduler

        sch = self.pipe.scheduler
        if shift is not None and float(shift) != float(sch.config.shift):
            cfg = {**sch.config, "shift": float(shift)}
            self.pipe.scheduler = FlowMatchEulerDiscreteScheduler.from_config(cfg)
        return float(self.pipe.scheduler.config.shift)

    def _check(self, pipe: Any) -> None:
        """Refuse what the adapter does not reproduce or the pipeline cannot run.

        Raises:
            InputError: an unknown ``condition_sample``; sparse (NABLA) attention; frame counts
                the VAE cannot take, or fewer than 5 latent frames to generate (the pipeline's
                ``normalize_first_frame`` then gives NaN); sizes not multiples of 16.
        """
        if self.condition_sample not in SAMPLE_MODES:
            raise InputError(
                f"condition_sample must be one of {SAMPLE_MODES}, got {self.condition_sample!r}"
            )
        if pipe.transformer.config.attention_type != "regular":
            raise InputError(
                f"{pipe.transformer.config.attention_type!r} attention (sparse, a data-dependent "
                "block mask) is not modelled by kandinsky5-i2v: use a checkpoint with regular "
                "attention (the Pro SFT 5 s I2V)"
            )
        tf = pipe.vae_scale_factor_temporal
        mult = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]
        check_video_size((self.num_frames, self.opt_num_frames), tf, self.height, self.width, mult)
        if self._latent_frames(self.num_frames) < MIN_LATENT_FRAMES:
            raise InputError(
                f"num_frames={self.num_frames} is too short: Kandinsky 5's pipeline renormalises "
                f"the first 4 latent frames to the next ones and needs at least "
                f"{(MIN_LATENT_FRAMES - 1) * tf + 1} frames (fewer give NaN in diffusers 0.42.1)"
            )

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "condition_sample": self.condition_sample}

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _text(self, negative: bool) -> tuple[Tensor, Tensor]:
        """The Qwen embeddings ``(1, L, D)`` and the pooled CLIP vector ``(1, D2)``."""
        pre = "negative_" if negative else ""
        p = self.prompt
        return p[f"{pre}prompt_embeds_qwen"], p[f"{pre}prompt_embeds_clip"]

    def _forward(self, lat: Tensor, t: Tensor, qwen: Tensor, clip: Tensor) -> Tensor:
        """Velocity for latents ``(B,F,C,h,w)`` at the global timestep ``t`` ``(B,)``, as the
        pipeline calls the transformer: channels-last, ``[latents | zeros | frame-0 mask]`` when
        ``visual_cond``, RoPE positions per patch, the resolution's RoPE scale."""
        tr = self.pipe.transformer
        b, f, _, h, w = lat.shape
        x = lat.permute(0, 1, 3, 4, 2)
        if tr.visual_cond:  # visual_cond is zeros_like(latents) in the pipeline: no photo there
            mask = x.new_zeros(b, f, h, w, 1)
            mask[:, 0] = 1
            x = torch.cat([x, torch.zeros_like(x), mask], -1)
        _, p_h, p_w = tr.config.patch_size
        dev = lat.device
        rope = [torch.arange(f, device=dev), torch.arange(h // p_h, device=dev),
                torch.arange(w // p_w, device=dev)]  # fmt: skip
        out = tr(
            hidden_states=x.to(tr.dtype),
            encoder_hidden_states=qwen.expand(b, -1, -1).to(tr.dtype),
            timestep=t.to(tr.dtype),
            pooled_projections=clip.expand(b, -1).to(tr.dtype),
            visual_rope_pos=rope,
            text_rope_pos=torch.arange(qwen.shape[1], device=dev),
            scale_factor=self.pipe._get_scale_factor(self.height, self.width),
            sparse_params=None,
            return_dict=False,
        )
        return out.permute(0, 1, 4, 2, 3).to(self.dtype)

    # ------------------------------------------------------------------ conditioning
    def encode(self, x: Tensor, *, generator: torch.Generator | None = None) -> Conditioning:
        """Image -> 1-frame VAE encode -> posterior draw (or mode) × ``scaling_factor`` on frame 0.

        ``ε`` of the draw comes from ``generator`` (one draw for the batch), else from a generator
        keyed by each image (see the family's docstring). Shape: x ``(B,3,H,W)`` in [0,1] ->
        ``image_latents (B,F_lat,C,h,w)`` (the scaled latent on frame 0, zeros after: frames 1+
        carry nothing of the photo), ``first_latent (B,C,h,w)`` (the raw draw, unscaled).
        """
        return self._encode(x, generator, (x,))

    def _encode(
        self, x: Tensor, generator: torch.Generator | None, keys: tuple[Tensor, ...]
    ) -> Conditioning:
        check_image(x)
        vae = self.pipe.vae
        img = self.prepare(x.to(self.device, self.dtype)) * 2 - 1
        dist = vae.encode(img.unsqueeze(2).to(vae.dtype)).latent_dist
        if self.condition_sample == "sample":
            eps = (torch.randn(dist.mean.shape, generator=generator) if generator is not None
                   else keyed_randn(dist.mean.shape, *keys))  # fmt: skip
            raw = dist.mean + dist.std * eps.to(dist.mean)
        else:
            raw = dist.mode()
        return self.condition_on_latent(raw[:, :, 0].to(self.dtype))

    def condition_on_latent(self, first_latent: Tensor) -> Conditioning:
        """The conditioning from a raw 1-frame latent ``(B,C,h,w)`` (for latent-space studies)."""
        frames = self._latent_frames(self.opt_num_frames)
        scaled = first_latent * self.pipe.vae.config.scaling_factor
        rest = scaled.new_zeros(scaled.shape[0], frames - 1, *scaled.shape[1:])
        return Conditioning(torch.cat([scaled.unsqueeze(1), rest], 1), first_latent)

    def _cond(self, x: Tensor | Conditioning, noise: Tensor) -> Conditioning:
        """The conditioning of ``x``; inside :meth:`denoise`/:meth:`rollout` each image's draw is
        keyed by the image and its noise video (a fresh draw per step, reproducible per run)."""
        return x if isinstance(x, Conditioning) else self._encode(x, None, (x, noise))

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> posterior-mode latent × ``scaling_factor``. ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        vae = self.pipe.vae
        pixels = video_pixels(self, video, self.pipe.vae_scale_factor_temporal)
        lat = vae.encode(pixels.to(vae.dtype)).latent_dist.mode() * vae.config.scaling_factor
        return lat.transpose(1, 2).to(self.dtype)

    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sf = self.pipe.vae_scale_factor_spatial
        ch = self.pipe.transformer.config.in_visual_dim
        frames = self._latent_frames(self.opt_num_frames)
        return (batch, frames, ch, self.height // sf, self.width // sf)

    # ------------------------------------------------------------------ denoiser
    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 1000·σ``, σ = the scheduler's static shift applied to ``U(0.001, 0.999)``."""
        _, f, _, h, w = self.latent_shape(1)
        return flow_timesteps(self.pipe.scheduler, batch, generator, f * h * w, self.device)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−σ)·z0 + σ·noise`` on frames 1+, frame 0 = the photo's latent; one global
        timestep for every token (frame 0's too, as the pipeline); ``pred = v``; conditional only.

        Shape: timestep ``(B,)`` or scalar (``1000·σ``); noise, z0 and outputs ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._cond(x, noise)
        if z0 is None:
            z0 = cond.image_latents[:, :1].expand(-1, noise.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(z0.shape[0])
        sigma = (t / 1000).to(self.dtype)
        qwen, clip = self._text(False)
        c0 = cond.image_latents[:, 0]
        return frame0_denoise(c0, z0, noise, sigma, lambda n: self._forward(n, t, qwen, clip))
