"""The ``dynamicrafter`` adapter: the differentiable pieces the loss sees (VAE and Resampler
conditioning, the DDPM denoiser with dynamic rescale). The model, how it is conditioned and the
choices made are in the family's docstring (:mod:`stillguard.adapters.dynamicrafter`)."""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS, close_matches
from .._shared.generate import check_image
from .._shared.load import freeze
from ..base import Adapter, Conditioning, Denoised
from . import capture as dc_capture
from .generate import DynamiCrafterVideo
from .load import DynamiCrafterLoading

_DEFAULTS: dict[str, Any] = dict(
    height=576, width=1024, num_frames=16, num_inference_steps=50, guidance_scale=7.5,
    guidance_rescale=0.7, eta=1.0, timestep_spacing="uniform_trailing", fs=10,
)  # fmt: skip


@ADAPTERS.register("dynamicrafter")
class DynamiCrafter(DynamiCrafterLoading, DynamiCrafterVideo, Adapter):
    """DynamiCrafter image-to-video: video UNet with dual cross-attention, DDIM (see module doc)."""

    capabilities = frozenset(
        {"hidden-states", "attention-temporal", "attention-spatial", "vae-features"}
        | {"image-embeds", "rollout"}
    )
    default_model = "Doubiiu/DynamiCrafter_1024"
    real_models = {
        "Doubiiu/DynamiCrafter_1024": "dynamicrafter-1024",
        "Doubiiu/DynamiCrafter_512": "dynamicrafter-512",
        "Doubiiu/DynamiCrafter": "dynamicrafter-256",
    }
    #: how to get the weights of a real model (``{model}``: its hub id), told by the command line
    #: when they are not on this machine: the official weights are a pickle (``model.ckpt``) that
    #: stillguard never unpickles, so a download alone is not enough
    weights_hint: ClassVar[str | None] = (
        "DynamiCrafter's official weights are a pickle that stillguard never unpickles: download "
        "model.ckpt from {model}, convert it once with `stillguard convert model.ckpt "
        "dynamicrafter.safetensors` and pass --model dynamicrafter.safetensors"
    )

    def __init__(self, pipe: Any, *, model_id: str, settings: dict[str, Any], prompt: dict[str, Tensor], device: torch.device, dtype: torch.dtype) -> None:  # fmt: skip
        self.pipe, self.model_id, self.device, self.dtype = pipe, model_id, device, dtype
        freeze(pipe)
        s = {**_DEFAULTS, **settings}
        unknown = set(s) - set(_DEFAULTS) - {"adapter"}
        if unknown:
            raise InputError(
                f"unknown dynamicrafter option(s) {sorted(unknown)}: "
                f"{close_matches(sorted(unknown)[0], list(_DEFAULTS))}"
            )
        self.settings = {k: s[k] for k in _DEFAULTS}
        for k, v in self.settings.items():
            setattr(self, k, v)
        self.prompt = {k: v.to(device, dtype) for k, v in prompt.items()}
        self._uncond_tokens: Tensor | None = None

    # ------------------------------------------------------------------ differentiable pieces
    @property
    def _sf(self) -> float:
        return self.pipe.scale_factor

    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        f = self.pipe.vae.scale_factor_spatial
        return (batch, self.num_frames, 4, self.height // f, self.width // f)

    def _condition(self, x: Tensor, frames: int) -> Conditioning:
        check_image(x)
        pixels = self.prepare(x.to(self.device, self.dtype)) * 2 - 1
        first = self.pipe.vae.encode(pixels)[0]
        tokens = self.pipe.image_proj_model(self.pipe.embedder(pixels))
        fs = torch.full((x.shape[0],), int(self.fs), device=self.device, dtype=torch.long)
        lat = (first * self._sf).unsqueeze(1).expand(-1, frames, -1, -1, -1)
        return Conditioning(lat, first, tokens, {"fs": fs})

    def encode(self, x: Tensor) -> Conditioning:
        """VAE mean latent (repeated, scaled) and Resampler image tokens, differentiably.

        Shape: ``image_latents (B,F,4,h,w)``, ``first_latent (B,4,h,w)`` unscaled,
        ``image_embeds (B, Q·F, D)``, ``extra["fs"] (B,)``.
        """
        return self._condition(x, self.num_frames)

    def encode_video(self, video: Tensor) -> Tensor:
        """``(B,F,3,H,W)`` in [0,1] -> scaled VAE mean latents ``(B,F,4,h,w)``, frame by frame."""
        if video.ndim != 5 or video.shape[2] != 3:
            raise InputError(f"expected a video (B, F, 3, H, W), got {tuple(video.shape)}")
        frames = self.prepare(video.to(self.device, self.dtype).flatten(0, 1))
        return (self.pipe.vae.encode(frames * 2 - 1)[0] * self._sf).unflatten(0, video.shape[:2])

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """Integer DDPM steps, uniform in ``[0, 1000)`` as in training. Shape ``(batch,)``."""
        n = self.pipe.alphas_cumprod.shape[0]
        t = torch.randint(0, n, (batch,), generator=generator, device=generator.device)
        return t.float().to(self.device)

    def _unet(self, noisy: Tensor, lat: Tensor, t: Tensor, context: Tensor, fs: Tensor) -> Tensor:
        x = torch.cat([noisy, lat.to(noisy.dtype)], 2).transpose(1, 2)  # (B, C, F, h, w)
        return self.pipe.unet(x, t, context, fs).transpose(1, 2)

    def _context(self, cond: Conditioning, negative: bool = False) -> Tensor:
        text = self.prompt["negative_prompt_embeds" if negative else "prompt_embeds"]
        b = cond.image_embeds.shape[0]
        return torch.cat([text.expand(b, -1, -1), cond.image_embeds.to(text.dtype)], 1)

    def _coeffs(self, t: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        idx = t.round().long().clamp(0, self.pipe.alphas_cumprod.shape[0] - 1).cpu()
        a = self.pipe.alphas_cumprod.float().cpu()[idx].view(-1, 1, 1, 1, 1)
        s = self.pipe.scale_arr.float().cpu()[idx] if self.pipe.use_dynamic_rescale else torch.ones(len(idx))  # fmt: skip
        return (v.to(self.device, self.dtype) for v in (a.sqrt(), (1 - a).sqrt(), s.view(-1, 1, 1, 1, 1)))  # type: ignore[return-value]  # fmt: skip

    def denoise(self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None) -> Denoised:  # fmt: skip
        """One conditional UNet call on ``z0`` noised at DDPM step ``timestep``.

        ``noisy = √ā·s·z0 + √(1−ā)·noise`` with ``s = scale_arr[t]`` (1 without dynamic rescale);
        v-models: ``target = √ā·noise − √(1−ā)·s·z0``, ``x0 = (√ā·noisy − √(1−ā)·pred)/s``;
        eps-models: ``target = noise``, ``x0 = (noisy − √(1−ā)·pred)/(√ā·s)``. ``z0`` defaults to
        the scaled image latent repeated over the frames. Shapes ``(B,F,4,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        lat = cond.image_latents
        if z0 is None:
            z0 = lat
        z0 = z0.to(self.device, self.dtype)
        if z0.shape[1] != lat.shape[1]:
            lat = (cond.first_latent * self._sf).unsqueeze(1).expand(-1, z0.shape[1], -1, -1, -1)
        t = torch.as_tensor(timestep, device=self.device, dtype=torch.float32).reshape(-1).expand(z0.shape[0])  # fmt: skip
        sa, s1a, s = self._coeffs(t)
        noise = noise.to(self.device, self.dtype)
        noisy = sa * s * z0 + s1a * noise
        pred = self._unet(noisy, lat, t, self._context(cond), cond.extra["fs"])
        if self.pipe.parameterization == "v":
            target, x0 = sa * noise - s1a * s * z0, (sa * noisy - s1a * pred) / s
        else:
            target, x0 = noise, (noisy - s1a * pred) / (sa * s)
        return Denoised(pred=pred, target=target, x0=x0, z0=z0, noisy=noisy)

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable DDIM steps (eta 0, CFG as configured) from pure ``noise``."""
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        return self._sample(cond, noise, steps, 0.0, None)

    # ------------------------------------------------------------------ introspection
    def layer_names(self, kind: str) -> list[str]:
        """See :mod:`.capture`: temporal/spatial self-attention, UNet blocks, VAE levels."""
        return dc_capture.layer_names(self.pipe, kind)

    def capture(self, hidden: Any = (), attention: Any = (), *, mode: str = "exact", max_queries: int = 256, generator: torch.Generator | None = None) -> Any:  # fmt: skip
        """Block outputs and self-attention maps: temporal ``(B·h·w, heads, F, F)`` (``pooled``:
        ``(B, heads, F, F)``), spatial ``(B·F, heads, Q, h·w)`` (``exact``/``sampled`` only)."""
        return dc_capture.capture(self, hidden, attention, mode, max_queries, generator)
