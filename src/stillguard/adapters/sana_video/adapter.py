"""The ``sana-video-i2v`` adapter: the differentiable pieces the loss sees (the photo's latent on
frame 0, timestep 0 on its tokens, denoise). The model, what the attack reaches and the choices
made are in the family's docstring (:mod:`stillguard.adapters.sana_video`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS
from .._shared.flow import flow_timesteps
from .._shared.frame0 import frame0_denoise
from .._shared.generate import check_image, video_pixels
from .._shared.load import adopt_pipeline
from .._shared.settings import check_video_size
from ..base import Adapter, Conditioning, Denoised
from .capture import LINEAR_MAPS, SanaCapture
from .generate import SanaVideo
from .load import SanaLoading


@ADAPTERS.register("sana-video-i2v")
class SanaVideoI2V(SanaLoading, SanaCapture, SanaVideo, Adapter):
    """SANA-Video: the photo's latent on frame 0 (timestep 0 there); linear self-attention.

    See :mod:`.capture` for the attention map linear attention implies."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})
    default_model = "Efficient-Large-Model/SANA-Video_2B_480p_diffusers"
    real_models = {default_model: "sana-video-2b-480p"}

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
        self.height = int(settings.get("height", 480))
        self.width = int(settings.get("width", 832))
        self.num_frames = int(settings.get("num_frames", 81))
        self.opt_num_frames = int(settings.get("opt_num_frames") or self.num_frames)
        self.num_inference_steps = int(settings.get("num_inference_steps", 50))
        self.guidance_scale = float(settings.get("guidance_scale", 6.0))
        self.linear_map = str(settings.get("linear_map", "kernel"))
        if self.linear_map not in LINEAR_MAPS:
            raise InputError(
                f"linear_map must be one of {LINEAR_MAPS} (see the sana-video-i2v docs), got "
                f"{self.linear_map!r}"
            )
        frames, tr = (self.num_frames, self.opt_num_frames), pipe.vae_scale_factor_temporal
        check_video_size(frames, tr, self.height, self.width, 32)  # 32: the pipeline's check
        self._rollout_scheduler = type(pipe.scheduler).from_config(pipe.scheduler.config)
        self.prompt = {k: v.to(device) for k, v in prompt.items()}

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _norm(self, raw: Tensor) -> Tensor:
        """Raw Wan-VAE latent ``(B,C,F,h,w)`` -> the pipeline's ``(raw − mean) / std``."""
        cfg = self.pipe.vae.config
        mean = torch.tensor(cfg.latents_mean, device=raw.device).view(1, -1, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(cfg.latents_std, device=raw.device).view(1, -1, 1, 1, 1)
        return ((raw.float() - mean) * inv_std).to(self.dtype)

    def _vae_mode(self, pixels: Tensor) -> Tensor:
        vae = self.pipe.vae
        return vae.encode(pixels.to(vae.dtype)).latent_dist.mode()

    def _text(self, batch: int, cfg: bool) -> tuple[Tensor, Tensor]:
        """Prompt embeddings and mask for ``batch`` items; ``cfg``: ``[negative, positive]``."""
        p = self.prompt
        e = p["prompt_embeds"].to(self.dtype).expand(batch, -1, -1)
        m = p["prompt_attention_mask"].expand(batch, -1)
        if cfg:
            ne = p["negative_prompt_embeds"].to(self.dtype).expand(batch, -1, -1)
            nm = p["negative_prompt_attention_mask"].expand(batch, -1)
            e, m = torch.cat([ne, e]), torch.cat([nm, m])
        return e, m

    def _forward(self, lat: Tensor, t: Tensor, embeds: Tensor, mask: Tensor) -> Tensor:
        """Velocity ``(B,F,C,h,w)`` for latents ``(B,F,C,h,w)`` at timestep ``t`` ``(B,)``: the
        per-token timestep is ``t·(1 − m)`` with ``m`` 1 on the frame-0 tokens, as the pipeline."""
        tr = self.pipe.transformer
        p_t, p_h, p_w = tr.config.patch_size
        b, f, _, h, w = lat.shape
        frame0 = lat.new_zeros(1, 1, f // p_t, h // p_h, w // p_w)
        frame0[:, :, 0] = 1
        timestep = t.to(lat.dtype).view(-1, 1, 1, 1, 1) * (1 - frame0)
        out = tr(
            lat.transpose(1, 2).to(tr.dtype),
            encoder_hidden_states=embeds.to(tr.dtype),
            encoder_attention_mask=mask,
            timestep=timestep,
            return_dict=False,
        )[0]
        return out.transpose(1, 2).to(self.dtype)

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sr = self.pipe.vae_scale_factor_spatial
        ch = self.pipe.transformer.config.in_channels
        frames = self._latent_frames(self.opt_num_frames)
        return (batch, frames, ch, self.height // sr, self.width // sr)

    def encode(self, x: Tensor) -> Conditioning:
        """Image -> 1-frame VAE encode (posterior mode, as the pipeline) -> Wan-normalised latent.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)`` (frame 0 is what the
            transformer sees; the others repeat it), ``first_latent (B,C,h,w)`` (raw latent).
        """
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype))
        raw = self._vae_mode((img * 2 - 1).unsqueeze(2))
        lat = self._norm(raw).transpose(1, 2)
        frames = self._latent_frames(self.opt_num_frames)
        return Conditioning(lat.expand(-1, frames, -1, -1, -1), raw[:, :, 0].to(self.dtype))

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> normalised posterior-mode latent. ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        pixels = video_pixels(self, video, self.pipe.vae_scale_factor_temporal)
        return self._norm(self._vae_mode(pixels)).transpose(1, 2)

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 1000·σ'``, ``σ' = sσ/(1+(s−1)σ)``, ``σ ~ U(0.001, 0.999)``, ``s`` = the
        scheduler's ``flow_shift`` (8). Shape ``(batch,)``."""
        return flow_timesteps(self.pipe.scheduler, batch, generator, 0, self.device)

    def _cond(self, x: Tensor | Conditioning) -> Conditioning:
        return x if isinstance(x, Conditioning) else self.encode(x)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−σ)·z0 + σ·noise`` on frames 1+, frame 0 = the photo's latent (timestep 0
        there); ``pred`` = velocity; frame 0's ``target`` is the detached prediction (it is never
        stepped, so losses ignore it).

        Shape:
            timestep ``(B,)`` or scalar (``1000·σ``); noise, z0 and every output ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._cond(x)
        c0 = cond.image_latents[:, :1]
        if z0 is None:
            z0 = c0.expand(-1, noise.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        b = z0.shape[0]
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(b)
        text = self._text(b, False)
        return frame0_denoise(
            c0[:, 0], z0, noise, (t / 1000).to(self.dtype), lambda v: self._forward(v, t, *text)
        )
