"""DynamiCrafter adapter (``dynamicrafter``): stillguard's own implementation, official weights.

Target: DynamiCrafter (Xing et al., arXiv 2310.12190; Doubiiu/DynamiCrafter), the 1024×576, 512×320
and 256×256 checkpoints, one of the three models Anti-I2V (arXiv 2603.24570) evaluates. Not in
diffusers, so the architecture is written here (``adapters/nets/dc_*.py``, each file names its
official source) with the official parameter names: ``official_model(part)`` is the whole
``LatentVisualDiffusion`` of ``model.ckpt``. **Licence**: the code is Apache-2.0, but the authors
allow the weights for personal/research/non-commercial use only (model card and README).
Construction lives in :mod:`._dynamicrafter_load`, DDIM sampling, decoding and generation in
:mod:`._dynamicrafter_generate`, layer names and capture in :mod:`.nets.dc_layers`; this module
holds the differentiable pieces.

How the model is conditioned (``lvdm/models/ddpm3d.py``, ``scripts/evaluation/inference.py``):
the image latent (SD VAE, ×0.18215) is concatenated on channels to every noisy frame; the image's
OpenCLIP ViT-H/14 tokens go through the query Resampler (16 tokens per frame) and are appended
to the 77 OpenCLIP text tokens for the dual cross-attention; ``fs`` (fps for 1024/512, frame
stride for 256) is embedded like a timestep. 1024/512: v-prediction, zero-terminal-SNR betas,
dynamic latent rescale, ``uniform_trailing`` DDIM with ``guidance_rescale=0.7``; 256:
eps-prediction, ``uniform`` DDIM, no rescale (``scripts/run.sh``, ``funcs.py``). Guidance: 7.5,
with the empty prompt and the image tokens of a gray (all-zero in ``[-1, 1]``) image as the
unconditional branch; the image latent is kept in both branches.

Choices where the sources leave room:
    * [ENG] the VAE posterior *mean* is used (the official code draws a sample), so encoding is
      deterministic; ``denoise`` draws nothing.
    * [ENG] ``denoise``: ``t`` is an integer DDPM step; ``x0``, ``z0`` are in unscaled-latent units
      (the 1024/512 models noise ``scale_arr[t]·z0``: ``target`` and ``x0`` account for it).
    * [ENG] ``rollout`` is the official DDIM with ``eta = 0`` (deterministic); ``generate`` uses
      the official ``eta = 1`` with noise from the seed.
    * [ENG] prompts: precomputed embeddings (``prompt_embeds.safetensors`` or ``prompt_embeds=``);
      without them a folder whose weights hold the text tower gets the exact embedding of the
      empty prompt (the official no-text mode); no tokenizer is shipped.
    * Vid-Freeze's decoupled form: ``attention-temporal`` = both self-attentions (``attn1``,
      ``attn2``; ``temporal_selfatt_only``) of every ``TemporalTransformer``, ``init_attn``
      included, maps ``(B·h·w, heads, F, F)``; ``attention-spatial`` = every spatial ``attn1``.
    * Anti-I2V: ``hidden`` = ``input_blocks.0..11``, ``middle_block``, ``output_blocks.0..11``
      (outputs ``(B·F, C, h, w)``); the method's ``irc_ref=2`` ("layer 3") is ``input_blocks.2``
      and its last three are ``output_blocks.9..11`` [INF: the paper names no DynamiCrafter
      layer]; ``vae`` = the encoder's resolution levels and mid block; ``image-embeds`` = the
      Resampler tokens the UNet sees.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import ADAPTERS, close_matches
from ._dynamicrafter_generate import DynamiCrafterVideo
from ._dynamicrafter_load import DynamiCrafterLoading
from ._shared.generate import check_image
from ._shared.load import freeze
from .base import Adapter, Conditioning, Denoised
from .nets import dc_layers

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
        """See :mod:`.nets.dc_layers`: temporal/spatial self-attention, UNet blocks, VAE levels."""
        return dc_layers.layer_names(self.pipe, kind)

    def capture(self, hidden: Any = (), attention: Any = (), *, mode: str = "exact", max_queries: int = 256, generator: torch.Generator | None = None) -> Any:  # fmt: skip
        """Block outputs and self-attention maps: temporal ``(B·h·w, heads, F, F)`` (``pooled``:
        ``(B, heads, F, F)``), spatial ``(B·F, heads, Q, h·w)`` (``exact``/``sampled`` only)."""
        return dc_layers.capture(self, hidden, attention, mode, max_queries, generator)
