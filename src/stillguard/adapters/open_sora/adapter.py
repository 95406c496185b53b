"""The ``open-sora-1.2`` adapter: the differentiable pieces the loss sees (the photo's latent held
clean on frame 0, denoise, rollout). The model, the papers' layers and the choices made are in the
family's docstring (:mod:`stillguard.adapters.open_sora`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS, close_matches
from .._shared.generate import check_image
from .._shared.load import freeze
from ..base import Adapter, Conditioning, Denoised
from . import pipeline as P
from . import rflow as RF
from .capture import OpenSoraCapture
from .generate import OpenSoraVideo
from .load import OpenSoraLoading

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
        # re-noising noise (see rflow.sample): fixed seed, so rollout is a
        # deterministic function of ``noise``; shared by the batch, so that each video gets what
        # it gets alone
        gen = torch.Generator(self.device).manual_seed(0)
        z = z.transpose(1, 2)
        out = RF.sample(
            self._cfg_velocity, z, ts, cond_frames=1, generator=gen, shared_renoise=True
        )
        return out.transpose(1, 2)
