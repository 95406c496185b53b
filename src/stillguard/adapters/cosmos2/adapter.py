"""The ``cosmos2-i2v`` adapter: the differentiable pieces the loss sees (the photo's latent as the
first latent frame, its own near-zero timestep and a condition-mask channel, denoise). The model,
what the photo reaches and the choices made are in the family's docstring
(:mod:`stillguard.adapters.cosmos2`). Latents are ``(B, F_lat, C, h, w)`` here and
``(B, C, F_lat, h, w)`` in diffusers."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...registry import ADAPTERS
from .._shared.frame0 import frame0_denoise
from .._shared.generate import check_image, video_pixels
from .._shared.latents import posterior_latent
from .._shared.load import adopt_pipeline
from .._shared.settings import check_video_size
from ..base import Adapter, Conditioning, Denoised
from . import padding
from .capture import Cosmos2Capture
from .generate import Cosmos2Video
from .load import Cosmos2Loading
from .settings import Cosmos2Settings


def swap_fc(z: Tensor) -> Tensor:
    """``(B, F, C, h, w)`` <-> ``(B, C, F, h, w)``: stillguard's latent layout and diffusers'."""
    return z.transpose(1, 2)


@ADAPTERS.register("cosmos2-i2v")
class Cosmos2I2V(Cosmos2Loading, Cosmos2Capture, Cosmos2Video, Adapter):
    """Cosmos-Predict2 Video2World: the photo's latent is latent frame 0 (condition mask 1).

    Frame 0 gets its own timestep σ_c/(σ_c+1); EDM preconditioning, i.e. flow matching with
    ``t = σ/(σ+1)``."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})
    default_model = "nvidia/Cosmos-Predict2-2B-Video2World"
    real_models = {"nvidia/Cosmos-Predict2-2B-Video2World": "cosmos-predict2-2b-video2world"}

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
        padding.install()
        adopt_pipeline(self, pipe, model_id, device, dtype, pipe.vae, pipe.transformer)
        self.s = s = Cosmos2Settings.from_dict(settings)
        self.height, self.width, self.num_frames = int(s.height), int(s.width), int(s.num_frames)
        self.opt_num_frames = int(s.opt_num_frames or s.num_frames)
        self.num_inference_steps = int(s.num_inference_steps)
        tf = pipe.vae_scale_factor_temporal
        step = pipe.vae_scale_factor_spatial * pipe.transformer.config.patch_size[1]
        check_video_size((self.num_frames, self.opt_num_frames), tf, self.height, self.width, step)
        self.prompt_embeds = prompt_embeds.to(device, dtype)
        ne = negative_prompt_embeds
        self.negative_prompt_embeds = (
            torch.zeros_like(self.prompt_embeds) if ne is None else ne.to(device, dtype)
        )

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _norm(self, raw: Tensor) -> Tensor:
        """Raw VAE latent ``(B, C, ...)`` -> ``(raw − mean) / std · σ_data`` (the pipeline's)."""
        cfg, shape = self.pipe.vae.config, (1, -1) + (1,) * (raw.ndim - 2)
        mean = torch.tensor(cfg.latents_mean, device=raw.device, dtype=raw.dtype).view(shape)
        std = torch.tensor(cfg.latents_std, device=raw.device, dtype=raw.dtype).view(shape)
        return (raw - mean) / std * float(self.pipe.scheduler.config.sigma_data)

    def _embeds(self, batch: int, negative: bool = False) -> Tensor:
        e = self.negative_prompt_embeds if negative else self.prompt_embeds
        return e.expand(batch, -1, -1) if e.shape[0] == 1 else e

    def _forward(self, lat: Tensor, t: Tensor, embeds: Tensor) -> Tensor:
        """The transformer's output for ``lat`` ``(B,F,C,h,w)`` (frame 0 = the condition) at flow
        time ``t`` ``(B,)`` in (0, 1), as the pipeline calls it: per-frame timestep
        ``[t_cond, t, t, ...]``, the condition-mask channel, an all-zero padding mask."""
        b, f, _, h, w = lat.shape
        model = self.pipe.transformer
        ind = lat.new_zeros(1, 1, f, 1, 1)
        ind[:, :, 0] = 1
        sc = float(self.s.sigma_conditioning)
        per_frame = t.to(lat.dtype).view(-1, 1, 1, 1, 1).expand(b, 1, f, 1, 1)
        timestep = ind * (sc / (sc + 1)) + (1 - ind) * per_frame
        out = model(
            hidden_states=swap_fc(lat).to(model.dtype), timestep=timestep.to(model.dtype),
            encoder_hidden_states=embeds.to(model.dtype), fps=self.s.fps,
            condition_mask=ind.expand(b, 1, f, h, w).to(model.dtype),
            padding_mask=lat.new_zeros(1, 1, self.height, self.width).to(model.dtype),
            return_dict=False,
        )[0]  # fmt: skip
        return swap_fc(out).to(self.dtype)

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sf = self.pipe.vae_scale_factor_spatial
        frames = self._latent_frames(self.opt_num_frames)
        return (batch, frames, self.pipe.vae.config.z_dim, self.height // sf, self.width // sf)

    def encode(self, x: Tensor, *, generator: torch.Generator | None = None) -> Conditioning:
        """Image -> 1-frame VAE encode (causal: the first latent frame of the pipeline's
        93-frame encode of the repeated photo) -> posterior draw or mode -> normalised latent
        repeated over the latent frames. Without ``generator`` the draw is keyed by the image.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)``, ``first_latent
            (B,C,h,w)`` (the raw drawn latent).
        """
        return self._encode(x, generator, (x,))

    def _encode(
        self, x: Tensor, generator: torch.Generator | None, keys: tuple[Tensor, ...]
    ) -> Conditioning:
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype))
        dist = self.pipe.vae.encode((img * 2 - 1).unsqueeze(2)).latent_dist
        lat = posterior_latent(dist, self.s.condition_sample == "sample", generator, keys)
        return self.condition_on_latent(lat[:, :, 0])

    def condition_on_latent(self, first_latent: Tensor) -> Conditioning:
        """The conditioning from a raw 1-frame latent ``(B,C,h,w)`` (for latent-space studies)."""
        frames = self._latent_frames(self.opt_num_frames)
        scaled = self._norm(first_latent)
        image_latents = scaled.unsqueeze(1).expand(-1, frames, -1, -1, -1)
        return Conditioning(image_latents=image_latents, first_latent=first_latent)

    def _cond(self, x: Tensor | Conditioning, noise: Tensor) -> Conditioning:
        """The conditioning of ``x``; the posterior draw of an image is keyed by image and noise
        (a fresh draw at every PGD step: the loss is averaged over the posterior, EOT)."""
        if isinstance(x, Conditioning):
            return x
        check_image(x)
        return self._encode(x, None, (x, noise))

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> normalised posterior-mode latent. ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        pixels = video_pixels(self, video, self.pipe.vae_scale_factor_temporal)
        return swap_fc(self._norm(self.pipe.vae.encode(pixels).latent_dist.mode()))

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``1000·t``, ``t = σ/(σ+1)``, σ on the sampler's Karras grid made continuous:
        ``σ = (σ_max^(1/7) + u·(σ_min^(1/7) − σ_max^(1/7)))^7``, ``u ~ U(0, 1)``. Shape ``(batch,)``."""
        cfg = self.pipe.scheduler.config
        lo, hi = (
            float(cfg.get("sigma_min", 0.002)) ** (1 / 7),
            float(cfg.get("sigma_max", 80.0)) ** (1 / 7),
        )
        u = torch.rand(batch, generator=generator, device=generator.device).double()
        sigma = (hi + u * (lo - hi)) ** 7
        return (1000 * sigma / (sigma + 1)).float().to(self.device)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−t)·z0 + t·noise`` on frames 1+ (``t = timestep/1000``; the pipeline's
        ``c_in·x`` with ``x = z0 + σ·noise``), frame 0 = the photo's latent; ``pred`` = the
        transformer's output, the velocity ``noise − z0`` (the pipeline's ``x0 = c_skip·x +
        c_out·pred`` is ``noisy − t·pred``); conditional only.

        Shape: timestep ``(B,)`` or scalar; noise, z0 and outputs ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._cond(x, noise)
        c0 = cond.image_latents[:, :1]
        if z0 is None:
            z0 = c0.expand(-1, noise.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        b = z0.shape[0]
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(b) / 1000
        embeds = self._embeds(b)
        return frame0_denoise(
            c0[:, 0], z0, noise, t.to(self.dtype), lambda v: self._forward(v, t, embeds)
        )

    def describe(self) -> dict[str, Any]:
        """The base description plus the posterior choice and whether the guardrail runs."""
        return {
            **super().describe(),
            "condition_sample": self.s.condition_sample,
            "guardrail": self.s.guardrail,
        }
