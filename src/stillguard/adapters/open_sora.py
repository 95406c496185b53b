"""Open-Sora 1.2 image-to-video adapter (``open-sora-1.2``), on stillguard's own STDiT3 + VAE.

Target: hpcaitech/Open-Sora v1.2 (STDiT3-XL/2: README "1.1B", 1,207,643,972 parameters counted;
video VAE "384M": 393,341,007 counted; rectified flow), one of the three models of Anti-I2V
(arXiv 2603.24570). Open-Sora is not in diffusers: the networks are re-implemented in
:mod:`.nets` with the official parameter names, so the official safetensors load with
``strict=True`` (see :meth:`OpenSora12.official_model`). Weights: safetensors only, from a local
folder (layout in :mod:`.nets.opensora_pipeline`) or the local Hugging Face cache, never
downloaded here, never pickles or remote code. Construction lives in :mod:`._open_sora_load`,
layer names and capture in :mod:`._open_sora_capture`, generation in :mod:`._open_sora_generate`;
this module holds the differentiable pieces.

Choices where the official pipeline leaves room (each one ours, stated):
    * conditioning = v1.2's I2V ``mask_strategy "0"``: latent frame 0 is the photo's latent, held
      clean, with ``x_mask`` False there (timestep-0 adaLN);
    * :meth:`encode` uses the posterior *means* of both VAEs (the pipeline samples them);
      :meth:`generate` samples them from the seeded generator;
    * ``first_latent`` is the temporal VAE's raw latent; ``image_latents`` are the normalised
      latent ``(z − shift)/scale`` repeated over all latent frames (the static video, also the
      default ``z0`` of :meth:`denoise`);
    * :meth:`sample_timesteps`: logit-normal(0, 1) times 1000 then the timestep transform at the
      working size (the v1.2 training recipe); :meth:`denoise` is conditional only (no CFG);
      :meth:`rollout` applies CFG against the model's learned null caption (``y_embedding``);
    * text: T5 features ``(1, 300, 4096)`` + mask, embedded once at load time (a local T5, or
      precomputed ``prompt_embeds.safetensors``); T5-XXL is never kept; without any, a zero
      embedding with an all-True mask is used (a stand-in, not T5's empty prompt);
    * :meth:`rollout` and :meth:`generate` follow ``RFLOW.sample`` step for step, including its
      re-noising when the first transformed timestep rounds above 1000 (see
      :func:`.nets.opensora_rflow.sample`); rollout draws that noise from a fixed seed.

Papers' layers mapped onto STDiT3 (28 spatial + 28 temporal blocks, alternating):
    * Vid-Freeze, decoupled form: ``temporal_blocks.{i}.attn`` (``attention-temporal``,
      ``T×T`` maps per position); ``spatial_blocks.{i}.attn`` are ``attention-spatial``;
    * Anti-I2V: a "block" is a spatial+temporal pair, recorded at ``temporal_blocks.{i}`` (the
      pair's output); the method's ``irc_ref=2`` (0-based; the paper's "layer 3") pulls pairs
      25..27 (the last three) onto pair 2; IRA uses every pair plus the VAE layers
      (``layer_names("vae")``: SDXL-VAE down blocks, then the temporal encoder's levels).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import ADAPTERS, close_matches
from ._open_sora_capture import OpenSoraCapture
from ._open_sora_generate import OpenSoraVideo
from ._open_sora_load import OpenSoraLoading
from ._shared.generate import check_image
from ._shared.load import freeze
from .base import Adapter, Conditioning, Denoised
from .nets import opensora_pipeline as P
from .nets import opensora_rflow as RF

_DEFAULTS = dict(
    # configs/opensora-v1-2/inference/sample.py: 240p at 9:16 (aspect.py: 240x426), "2s" = 51 fr.
    height=240, width=426, num_frames=51, fps=24, guidance_scale=7.0, num_inference_steps=30,
)  # fmt: skip


@ADAPTERS.register("open-sora-1.2")
class OpenSora12(OpenSoraLoading, OpenSoraCapture, OpenSoraVideo, Adapter):
    """Open-Sora 1.2 I2V: STDiT3 (spatial + temporal blocks), SDXL + temporal VAE, rectified flow."""

    capabilities = frozenset(
        {"hidden-states", "attention-temporal", "attention-spatial", "vae-features", "rollout"}
    )
    default_model = "hpcai-tech/OpenSora-STDiT-v3"
    real_models = {"hpcai-tech/OpenSora-STDiT-v3": "open-sora-1.2"}

    def __init__(
        self,
        pipe: P.OpenSoraPipeline,
        *,
        model_id: str,
        prompt_embeds: Tensor | None,
        prompt_mask: Tensor | None,
        settings: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        self.pipe, self.model_id, self.device, self.dtype = pipe, model_id, device, dtype
        freeze(pipe.transformer, pipe.vae)
        given = {k: v for k, v in settings.items() if v is not None and not k.startswith("_")}
        s = {**_DEFAULTS, **given}
        unknown = set(s) - set(_DEFAULTS) - {"opt_num_frames", "adapter"}
        if unknown:
            name = sorted(unknown)[0]
            raise InputError(
                f"unknown open-sora-1.2 option {name!r}: {close_matches(name, list(_DEFAULTS))}"
            )
        self.height, self.width = int(s["height"]), int(s["width"])
        self.num_frames = int(s["num_frames"])
        self.opt_num_frames = int(s.get("opt_num_frames") or self.num_frames)
        self.fps, self.guidance_scale = float(s["fps"]), float(s["guidance_scale"])
        self.num_inference_steps = int(s["num_inference_steps"])
        cfg = pipe.transformer.config
        if prompt_embeds is None:
            prompt_embeds = torch.zeros(1, cfg.model_max_length, cfg.caption_channels)
        if prompt_embeds.ndim != 3 or prompt_embeds.shape[-1] != cfg.caption_channels:
            raise InputError(
                f"prompt_embeds must be (1, L, {cfg.caption_channels}) T5 features, "
                f"got {tuple(prompt_embeds.shape)}"
            )
        self.prompt_embeds = prompt_embeds.to(device, dtype)
        mask = torch.ones(prompt_embeds.shape[:2]) if prompt_mask is None else prompt_mask
        self.prompt_mask = mask.to(device).bool()

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, frames: int) -> int:
        return self.pipe.vae.latent_frames(frames)

    def _velocity(self, z: Tensor, t: Tensor, x_mask: Tensor | None, null: bool = False) -> Tensor:
        """STDiT3 velocity for ``z (B,C,T,h,w)``; ``null`` uses the learned null caption."""
        b = z.shape[0]
        y = self.prompt_embeds.expand(b, -1, -1)
        if null:
            y = self.pipe.transformer.y_embedder.y_embedding[: y.shape[1]][None].expand(b, -1, -1)
        size = torch.tensor([self.height, self.width], device=self.device, dtype=torch.float32)
        out = self.pipe.transformer(
            z, t, y.to(self.dtype), mask=self.prompt_mask.expand(b, -1), x_mask=x_mask,
            fps=torch.full((b,), self.fps, device=self.device), height=size[:1], width=size[1:],
        )  # fmt: skip
        return out[:, : z.shape[1]].to(z.dtype)

    def _cfg_velocity(self, z: Tensor, t: Tensor, x_mask: Tensor | None) -> Tensor:
        v = self._velocity(z, t, x_mask)
        if self.guidance_scale == 1:
            return v
        v_null = self._velocity(z, t, x_mask, null=True)
        return v_null + self.guidance_scale * (v - v_null)

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        f = self.pipe.vae.spatial_factor
        frames = self._latent_frames(self.opt_num_frames)
        return (
            batch,
            frames,
            self.pipe.transformer.config.in_channels,
            self.height // f,
            self.width // f,
        )

    def encode(self, x: Tensor) -> Conditioning:
        """Image -> both VAE encoders (posterior means) -> one latent frame.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,4,h,w)`` (normalised, repeated),
            ``first_latent (B,4,h,w)`` (temporal-VAE latent before the shift/scale).
        """
        check_image(x)
        # resized in float32 (CPU has no bf16 antialiased bicubic), then cast
        img = self.prepare(x.to(self.device, torch.float32)).to(self.dtype) * 2 - 1
        vae = self.pipe.vae
        xz = vae.spatial_vae.encode(img.unsqueeze(2))
        first = vae.temporal_vae.encode(xz)[0][:, :, 0]
        lat = vae.normalise(first.unsqueeze(2))[:, :, 0]
        frames = self._latent_frames(self.opt_num_frames)
        return Conditioning(
            image_latents=lat.unsqueeze(1).repeat(1, frames, 1, 1, 1), first_latent=first
        )

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> normalised posterior-mean latent. ``(B,F,3,H,W)`` -> ``(B,F_lat,4,h,w)``."""
        if video.ndim != 5 or video.shape[2] != 3:
            raise InputError(f"expected a video (B, F, 3, H, W), got {tuple(video.shape)}")
        b, f = video.shape[:2]
        frames = self.prepare(video.to(self.device, torch.float32).flatten(0, 1)).to(self.dtype)
        frames = frames.unflatten(0, (b, f))
        z = self.pipe.vae.encode((frames * 2 - 1).transpose(1, 2))
        return z.transpose(1, 2)

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``1000·sigmoid(N(0,1))`` then the timestep transform (v1.2 training). Shape ``(batch,)``."""
        u = torch.randn(batch, generator=generator, device=generator.device).sigmoid()
        cfg = self.pipe.scheduler
        t = RF.timestep_transform(
            u * cfg.num_timesteps, self.height, self.width, self.opt_num_frames, cfg, self.dtype
        )
        return t.to(self.device)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−t/1000)·z0 + t/1000·noise`` with frame 0 replaced by the photo's latent
        (``x_mask`` False there); ``pred`` = velocity, ``target = z0 − noise``,
        ``x0 = noisy + t/1000·pred``. ``z0`` defaults to the static video ``image_latents``.

        Shape:
            timestep ``(B,)`` or scalar in [0, 1000]; noise, z0, outputs ``(B,F_lat,4,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        first = cond.image_latents[:, :1]
        z0 = (cond.image_latents if z0 is None else z0).to(self.device, self.dtype)
        b, frames = z0.shape[:2]
        noise = noise.to(self.device, self.dtype)
        t = torch.as_tensor(timestep, device=self.device, dtype=torch.float32).reshape(-1).expand(b)
        noisy = RF.add_noise(z0, noise, t, self.pipe.scheduler.num_timesteps)
        noisy = torch.cat([first, noisy[:, 1:]], 1)
        x_mask = torch.ones(b, frames, dtype=torch.bool, device=self.device)
        x_mask[:, 0] = False
        pred = self._velocity(noisy.transpose(1, 2), t, x_mask).transpose(1, 2)
        s = (t / self.pipe.scheduler.num_timesteps).view(-1, 1, 1, 1, 1).to(self.dtype)
        return Denoised(pred=pred, target=z0 - noise, x0=noisy + s * pred, z0=z0, noisy=noisy)

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable Euler steps of v1.2's sampler (CFG, timestep transform).

        Shape: noise ``(B,F_lat,4,h,w)`` -> final latent, same shape (frame 0 = the photo).
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        z = noise.to(self.device, self.dtype)
        z = torch.cat([cond.image_latents[:, :1].expand(z.shape[0], -1, -1, -1, -1), z[:, 1:]], 1)
        ts = RF.sampling_timesteps(steps, self.height, self.width, self.opt_num_frames,
                                   self.pipe.scheduler, self.device, self.dtype)  # fmt: skip
        # re-noising noise (see nets.opensora_rflow.sample): fixed seed, so rollout is a
        # deterministic function of ``noise``; shared by the batch, so that each video gets what
        # it gets alone
        gen = torch.Generator(self.device).manual_seed(0)
        z = z.transpose(1, 2)
        out = RF.sample(
            self._cfg_velocity, z, ts, cond_frames=1, generator=gen, shared_renoise=True
        )
        return out.transpose(1, 2)
