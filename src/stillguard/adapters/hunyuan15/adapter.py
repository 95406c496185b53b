"""The ``hunyuan15-i2v`` adapter: the differentiable pieces the loss sees (the photo's VAE latent on
channels and its SigLIP tokens in the context, denoise, rollout). The model, what the attack reaches
and the choices made are in the family's docstring (:mod:`stillguard.adapters.hunyuan15`)."""

from __future__ import annotations

import contextlib
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ...registry import ADAPTERS
from .._shared.build import fake_or_meta
from .._shared.flow import euler_scheduler, flow_timesteps
from .._shared.generate import check_image, video_pixels
from .._shared.load import adopt_pipeline
from .._shared.settings import check_video_size
from ..base import Adapter, Conditioning, Denoised
from .capture import Hunyuan15Capture
from .conditioning import batchable_vae, check_bucket, siglip_pixels
from .generate import Hunyuan15Video
from .load import Hunyuan15Loading
from .planning import sized

#: the transformer's text arguments -> the adapter's prompt keys
TEXT_ARGS = {
    "encoder_hidden_states": "prompt_embeds",
    "encoder_attention_mask": "prompt_embeds_mask",
    "encoder_hidden_states_2": "prompt_embeds_2",
    "encoder_attention_mask_2": "prompt_embeds_mask_2",
}


@ADAPTERS.register("hunyuan15-i2v")
class HunyuanVideo15I2V(Hunyuan15Loading, Hunyuan15Capture, Hunyuan15Video, Adapter):
    """HunyuanVideo 1.5 I2V: photo latent concatenated on channels, SigLIP tokens in the context."""

    capabilities = frozenset(
        {"hidden-states", "attention-joint", "vae-features", "image-embeds", "rollout"}
    )
    default_model = "hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v"
    real_models = {default_model: "hunyuan-video-1.5-480p-i2v"}

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
        adopt_pipeline(
            self, pipe, model_id, device, dtype, pipe.vae, pipe.transformer, pipe.image_encoder
        )
        self.height = int(settings.get("height", 480))
        self.width = int(settings.get("width", 848))
        self.num_frames = int(settings.get("num_frames", 121))
        self.opt_num_frames = int(settings.get("opt_num_frames") or self.num_frames)
        self.num_inference_steps = int(settings.get("num_inference_steps", 50))
        self.guidance_scale = float(settings.get("guidance_scale", pipe.guider.guidance_scale))
        pipe.guider.guidance_scale = self.guidance_scale  # the pipeline's CFG lives in its guider
        pipe.guider.register_to_config(guidance_scale=self.guidance_scale)
        frames = (self.num_frames, self.opt_num_frames)
        check_video_size(frames, pipe.vae_scale_factor_temporal, self.height, self.width, None)
        check_bucket(pipe, self.height, self.width)
        batchable_vae(pipe.vae)
        self.prompt = {k: v.to(device) for k, v in prompt.items()}

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _text(self, batch: int, negative: bool = False) -> dict[str, Tensor]:
        """The transformer's four text arguments, expanded to ``batch``."""
        pre = "negative_" if negative else ""
        out = {}
        for arg, key in TEXT_ARGS.items():
            t = self.prompt[pre + key]
            t = t.to(self.dtype) if t.is_floating_point() and t.ndim == 3 else t
            out[arg] = t.expand(batch, *t.shape[1:])
        return out

    def _forward(
        self, lat: Tensor, cond: Conditioning, t: Tensor, negative: bool = False
    ) -> Tensor:
        """Velocity ``(B,F,C,h,w)`` for latents ``(B,F,C,h,w)`` at timestep ``t`` ``(B,)``: the
        input is ``[noisy | photo latent on frame 0 | mask 1 on frame 0]`` on channels."""
        b = lat.shape[0]
        x = lat.transpose(1, 2)
        mask = x.new_zeros(b, 1, *x.shape[2:])
        mask[:, :, 0] = 1
        x = torch.cat([x, cond.image_latents.transpose(1, 2).to(x), mask], 1)
        tr = self.pipe.transformer
        fake = fake_or_meta(x.device)  # no values: the stock forward's data-dependent steps fail
        with sized(tr) if fake else contextlib.nullcontext():
            out = tr(
                hidden_states=x,
                timestep=t.to(x.dtype).expand(b),
                image_embeds=cond.image_embeds.to(x.dtype),
                return_dict=False,
                **self._text(b, negative),
            )[0]
        return out.transpose(1, 2)

    def _vae_mode(self, pixels: Tensor) -> Tensor:
        """Posterior mode of ``(B,3,F,H,W)`` in [-1,1] -> ``(B,C,F_lat,h,w)``."""
        vae = self.pipe.vae
        return vae.encode(pixels.to(vae.dtype)).latent_dist.mode().to(self.dtype)

    def _frames(self, cond: Conditioning, frames: int) -> Conditioning:
        """``cond`` with its image latent over ``frames`` latent frames (frame 0, zeros after)."""
        if cond.image_latents.shape[1] == frames:
            return cond
        lat = cond.image_latents[:, :1]
        lat = torch.cat([lat, lat.new_zeros(lat.shape[0], frames - 1, *lat.shape[2:])], 1)
        return Conditioning(lat, cond.first_latent, cond.image_embeds, dict(cond.extra))

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sr = self.pipe.vae_scale_factor_spatial
        ch = self.pipe.vae.config.latent_channels
        frames = self._latent_frames(self.opt_num_frames)
        return (batch, frames, ch, self.height // sr, self.width // sr)

    def image_embeds(self, img: Tensor) -> Tensor:
        """SigLIP ``last_hidden_state`` of a working-size photo ``(B,3,H,W)`` in [0,1] ->
        ``(B, N_img, D)`` (729 × 1152 for the real tower), the pipeline's image context."""
        enc = self.pipe.image_encoder
        pix = siglip_pixels(img, self.pipe.feature_extractor).to(enc.dtype)
        return enc(pixel_values=pix).last_hidden_state.to(self.dtype)

    def encode(self, x: Tensor) -> Conditioning:
        """Image -> both roads of the pipeline, differentiably: the 1-frame VAE encode (posterior
        mode) × ``scaling_factor`` on latent frame 0 (zeros after), and the SigLIP tokens.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)``, ``first_latent
            (B,C,h,w)`` (unscaled), ``image_embeds (B,N_img,D)``.
        """
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype))
        first = self._vae_mode((img * 2 - 1).unsqueeze(2))[:, :, 0]
        lat = (first * self.pipe.vae.config.scaling_factor).unsqueeze(1)
        cond = Conditioning(lat, first, self.image_embeds(img))
        return self._frames(cond, self._latent_frames(self.opt_num_frames))

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> scaled posterior-mode latent. Shape: ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        pixels = video_pixels(self, video, self.pipe.vae_scale_factor_temporal)
        return (self._vae_mode(pixels) * self.pipe.vae.config.scaling_factor).transpose(1, 2)

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 1000·σ``, σ = the scheduler's static shift of ``U(0.001, 0.999)``. Shape ``(batch,)``."""
        return flow_timesteps(self.pipe.scheduler, batch, generator, 0, self.device)

    def _cond(self, x: Tensor | Conditioning, frames: int) -> Conditioning:
        return self._frames(x if isinstance(x, Conditioning) else self.encode(x), frames)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−σ)·z0 + σ·noise`` on every latent frame (the photo enters on channels);
        ``pred`` = velocity, ``target = noise − z0``, ``x0 = noisy − σ·pred``.

        Shape:
            timestep ``(B,)`` or scalar (``1000·σ``); noise, z0 and every output ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = self._cond(x, noise.shape[1])
        if z0 is None:
            z0 = cond.image_latents[:, :1].expand(-1, noise.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        cond = self._frames(cond, z0.shape[1])
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(z0.shape[0])
        s = (t / 1000).to(self.dtype).view(-1, 1, 1, 1, 1)
        noisy = (1 - s) * z0 + s * noise
        pred = self._forward(noisy, cond, t)
        return Denoised(pred=pred, target=noise - z0, x0=noisy - s * pred, z0=z0, noisy=noisy)

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable Euler steps on the pipeline's grid (``linspace(1, 0, N+1)[:-1]``,
        shifted) with the pipeline's guider (CFG 6: a second, negative-prompt forward).

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)``.
        """
        lat = noise.to(self.device, self.dtype)
        cond = self._cond(x, lat.shape[1])
        sigmas = np.linspace(1.0, 0.0, steps + 1)[:-1]
        sch = euler_scheduler(self.pipe.scheduler, sigmas, self.device)
        guider = self.pipe.guider
        for i, t in enumerate(sch.timesteps):
            tt = t.to(self.device).expand(lat.shape[0])
            v = self._forward(lat, cond, tt)
            guider.set_state(step=i, num_inference_steps=steps, timestep=t)
            if guider.num_conditions > 1:
                v = guider.forward(v, self._forward(lat, cond, tt, negative=True)).pred
            lat = lat + (sch.sigmas[i + 1] - sch.sigmas[i]).to(self.device, self.dtype) * v
        return lat
