"""The ``ltx2-i2v`` adapter: the differentiable pieces the loss sees (the photo's latent on latent
frame 0 with timestep 0 on its tokens, the audio stream beside it, denoise). The model, what the
photo reaches and the choices made are in the family's docstring (:mod:`stillguard.adapters.ltx2`).
Latents are ``(B, F_lat, C, h, w)`` here, ``(B, C, F_lat, h, w)`` or packed ``(B, S, C)`` in
diffusers."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...registry import ADAPTERS
from .._shared.flow import keyed_randn
from .._shared.frame0 import frame0_denoise
from .._shared.generate import check_image
from .._shared.latents import LTXLatents
from .._shared.load import adopt_pipeline
from .._shared.settings import check_video_size
from ..base import Adapter, Conditioning, Denoised
from .capture import LTX2Capture
from .codec import h264_straight_through, resolve_codec
from .generate import LTX2Video
from .load import LTX2Loading
from .prompt import TextContext, text_context
from .settings import LTX2Settings


@ADAPTERS.register("ltx2-i2v")
class LTX2I2V(LTX2Loading, LTX2Capture, LTX2Video, LTXLatents, Adapter):
    """LTX-2: first latent frame replaced by the photo, timestep 0 on its tokens; audio untouched.

    A joint audio stream runs beside the video; the photo does not condition it."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})
    default_model = "Lightricks/LTX-2"
    real_models = {"Lightricks/LTX-2": "ltx-2-19b"}

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
            self, pipe, model_id, device, dtype, pipe.vae, pipe.transformer, pipe.connectors,
            pipe.audio_vae, pipe.vocoder,
        )  # fmt: skip
        self.s = s = LTX2Settings.from_dict(settings)
        self.height, self.width, self.num_frames = int(s.height), int(s.width), int(s.num_frames)
        self.opt_num_frames = int(s.opt_num_frames or s.num_frames)
        self.num_inference_steps = int(s.num_inference_steps)
        tr, sr = pipe.vae_temporal_compression_ratio, pipe.vae_spatial_compression_ratio
        check_video_size((self.num_frames, self.opt_num_frames), tr, self.height, self.width, sr)
        self.prompt = {k: v.to(device) for k, v in prompt.items()}
        self.codec = resolve_codec(s.codec, s.image_crf)
        p, self.context = self.prompt, {}  # a flat dict of tensors: "positive.video", ...
        for which, key in (("positive", "prompt"), ("negative", "negative_prompt")):
            ctx = text_context(pipe, p[f"{key}_embeds"].to(dtype), p[f"{key}_attention_mask"])
            self.context.update({f"{which}.{k}": v for k, v in ctx._asdict().items()})
        #: LTX-2.0 blocks ignore STG's perturbation (only ``perturbed_attn`` blocks read it)
        self.stg_has_effect = bool(pipe.transformer.config.get("perturbed_attn", False))

    # ------------------------------------------------------------------ helpers
    def _ctx(self, which: str, batch: int) -> TextContext:
        """The connectors' output for the ``"positive"`` or ``"negative"`` prompt, ``batch`` rows."""
        c = (self.context[f"{which}.{k}"] for k in TextContext._fields)
        return TextContext(*(v.expand(batch, *v.shape[1:]) for v in c))

    def audio_shape(self, batch: int, latent_frames: int) -> tuple[int, int, int, int]:
        """The audio latent ``(B, C, L, M)`` the pipeline draws for a video of ``latent_frames``:
        ``L = round(seconds · sample_rate / hop / 4)``, ``M = mel_bins / 4``."""
        pipe = self.pipe
        frames = (latent_frames - 1) * pipe.vae_temporal_compression_ratio + 1
        per_second = pipe.audio_sampling_rate / pipe.audio_hop_length
        length = round(
            frames / self.s.frame_rate * per_second / pipe.audio_vae_temporal_compression_ratio
        )
        mel = pipe.audio_vae.config.mel_bins // pipe.audio_vae_mel_compression_ratio
        return (batch, pipe.audio_vae.config.latent_channels, length, mel)

    def audio_noise(self, noise: Tensor) -> Tensor:
        """Pure-noise audio latents, packed ``(B, L, C·M)``, keyed per item by the video ``noise``
        (the adapter contract passes no audio noise; the pipeline draws it from its generator)."""
        shape = self.audio_shape(noise.shape[0], noise.shape[1])
        eps = keyed_randn(shape, noise).to(noise.device, noise.dtype)
        return self.pipe._pack_audio_latents(eps)

    def _forward(
        self, lat: Tensor, audio: Tensor, t: Tensor, t_audio: Tensor, ctx: TextContext, **extra: Any
    ) -> tuple[Tensor, Tensor]:
        """Velocities of video ``(B,F,C,h,w)`` and packed audio at timesteps ``t``/``t_audio``
        ``(B,)`` (``1000·σ``), timestep 0 on frame-0 tokens, as the pipeline calls the model."""
        b, f, _, h, w = lat.shape
        pipe, tr = self.pipe, self.pipe.transformer
        p, pt = pipe.transformer_spatial_patch_size, pipe.transformer_temporal_patch_size
        tokens = pipe._pack_latents(lat.transpose(1, 2), p, pt)
        mask = lat.new_zeros(1, 1, f, h, w)
        mask[:, :, 0] = 1
        mask = pipe._pack_latents(mask, p, pt).squeeze(-1)
        dev, fps = lat.device, self.s.frame_rate
        v, a = tr(
            hidden_states=tokens, audio_hidden_states=audio, encoder_hidden_states=ctx.video,
            audio_encoder_hidden_states=ctx.audio, timestep=t.to(lat.dtype)[:, None] * (1 - mask),
            audio_timestep=t_audio.to(lat.dtype), sigma=t.to(lat.dtype),
            audio_sigma=t_audio.to(lat.dtype), encoder_attention_mask=ctx.mask,
            audio_encoder_attention_mask=ctx.mask, num_frames=f, height=h, width=w, fps=fps,
            audio_num_frames=audio.shape[1],
            video_coords=tr.rope.prepare_video_coords(b, f, h, w, dev, fps=fps),
            audio_coords=tr.audio_rope.prepare_audio_coords(b, audio.shape[1], dev),
            use_cross_timestep=self.s.use_cross_timestep, return_dict=False, **extra,
        )  # fmt: skip
        v = pipe._unpack_latents(v, f, h, w, p, pt).transpose(1, 2)
        return v.to(lat.dtype), a.to(lat.dtype)

    # ------------------------------------------------------------------ differentiable pieces
    def encode(self, x: Tensor) -> Conditioning:
        """Image -> working size -> [H.264 re-encode, straight-through] -> 1-frame VAE encode
        (posterior mode, as the pipeline) -> normalised latent repeated over the latent frames.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)`` (frame 0 is what the
            transformer sees), ``first_latent (B,C,h,w)`` (the raw VAE latent).
        """
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype))
        if self.codec == "straight-through":
            img = h264_straight_through(img, self.s.image_crf)
        lat = self.pipe.vae.encode((img * 2 - 1).unsqueeze(2)).latent_dist.mode()
        return self.condition_on_latent(lat[:, :, 0])

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = (1−σ)·z0 + σ·noise`` on frames 1+, frame 0 = the photo's latent; ``pred = v``
        (the conditional prediction); the audio stream is pure noise at σ = 1 (see the family's
        docstring). Shape: timestep ``(B,)`` or scalar; noise, z0 and outputs ``(B,F_lat,C,h,w)``.
        """
        noise = noise.to(self.device, self.dtype)
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        c0 = cond.image_latents[:, :1]
        if z0 is None:
            z0 = c0.expand(-1, noise.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        b = z0.shape[0]
        t = torch.as_tensor(timestep, device=self.device).float().reshape(-1).expand(b)

        def forward(noisy: Tensor) -> Tensor:
            audio = self.audio_noise(noise)
            ctx = self._ctx("positive", b)
            return self._forward(noisy, audio, t, torch.full_like(t, 1000.0), ctx)[0]

        return frame0_denoise(c0[:, 0], z0, noise, (t / 1000).to(self.dtype), forward)

    def describe(self) -> dict[str, Any]:
        """The base description plus what happens to the photo's H.264 re-encode."""
        return {
            **super().describe(),
            "image_crf": self.s.image_crf,
            "codec": self.codec,
        }
