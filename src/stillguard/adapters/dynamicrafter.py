"""DynamiCrafter adapter (``dynamicrafter``): stillguard's own implementation, official weights.

Target: DynamiCrafter (Xing et al., arXiv 2310.12190; Doubiiu/DynamiCrafter), the 1024×576, 512×320
and 256×256 checkpoints, one of the three models Anti-I2V (arXiv 2603.24570) evaluates. Not in
diffusers, so the architecture is written here (``adapters/nets/dc_*.py``, each file names its
official source) with the official parameter names: ``official_model(part)`` is the whole
``LatentVisualDiffusion`` of ``model.ckpt``. **Licence**: the code is Apache-2.0, but the authors
allow the weights for personal/research/non-commercial use only (model card and README).

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

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import ADAPTERS, close_matches
from . import _common as C
from .base import Adapter, Conditioning, Denoised
from .nets import dc_config, dc_ddim, dc_layers, dc_load

_DEFAULTS: dict[str, Any] = dict(
    height=576, width=1024, num_frames=16, num_inference_steps=50, guidance_scale=7.5,
    guidance_rescale=0.7, eta=1.0, timestep_spacing="uniform_trailing", fs=10,
)  # fmt: skip


@ADAPTERS.register("dynamicrafter")
class DynamiCrafter(Adapter):
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

    def __init__(self, pipe: Any, *, model_id: str, settings: dict[str, Any], prompt: dict[str, Tensor], device: torch.device, dtype: torch.dtype) -> None:  # fmt: skip
        self.pipe, self.model_id, self.device, self.dtype = pipe, model_id, device, dtype
        C.freeze(pipe)
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

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(cls, model: str, *, device: str | torch.device = "cpu", dtype: torch.dtype | str = torch.float32, config: str | None = None, prompt_embeds: Tensor | None = None, negative_prompt_embeds: Tensor | None = None, **settings: Any) -> DynamiCrafter:  # fmt: skip
        """A folder written by :meth:`save_pretrained`, or one converted ``model.safetensors``.

        ``config`` (``"1024"``, ``"512"``, ``"256"``) picks the shipped configuration for a single
        file (default: told by its keys). Hub ids are refused: the official weights are pickles,
        convert them once with ``stillguard convert``. ``settings`` override ``stillguard.json``.
        """
        dtype, device = C.resolve_dtype(dtype), torch.device(device)
        folder, state = dc_load.resolve(model, config)
        has_text = any(k.startswith("cond_stage_model.") for k in state)
        net = dc_load.build(dc_config.read_config(folder), with_text=has_text)
        dc_load.load_into(net, state, str(model))
        stored = dc_load.settings_of(folder)
        stored.update({k: v for k, v in settings.items() if v is not None})
        prompt = dc_load.prompt_embeddings(net, folder, prompt_embeds, negative_prompt_embeds)
        net.cond_stage_model = None  # prompts are embedded: drop the text tower
        net.to(device, dtype)
        return cls(net, model_id=str(model), settings=stored, prompt=prompt, device=device, dtype=dtype)  # fmt: skip

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> DynamiCrafter:
        """64×64, 4 frames; every switch of the 1024 model on, at toy widths (``dc_config.TINY``)."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            net = dc_load.build(dc_config.TINY, with_text=False)
        gen = torch.Generator().manual_seed(seed)
        dim = dc_config.TINY["unet"]["context_dim"]
        prompt = {k: torch.randn(1, 77, dim, generator=gen) for k in dc_load.PROMPT_KEYS}
        settings = dict(
            height=64, width=64, num_frames=dc_config.TINY_FRAMES, num_inference_steps=3
        )
        device = torch.device(device)
        net.to(device)
        return cls(net, model_id="tiny", settings=settings, prompt=prompt, device=device, dtype=torch.float32)  # fmt: skip

    @classmethod
    def from_config(cls, folder: str | Any, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, **options: Any) -> DynamiCrafter:  # fmt: skip
        """Random weights from a config-only folder; zero prompt embeddings ``(1, 77, D)``."""
        folder, dtype = Path(folder), C.resolve_dtype(dtype)
        config = dc_config.read_config(folder)
        net = dc_load.build(config, with_text=False, device=device)
        if dtype != torch.float32:  # (a no-op cast fails under FakeTensorMode)
            net.to(dtype=dtype)
        dim = int(config["unet"]["context_dim"])
        with torch.device(device):
            prompt = {k: torch.zeros(1, 77, dim) for k in dc_load.PROMPT_KEYS}
        settings = dc_load.settings_of(folder)
        settings.update(options)
        return cls(net, model_id=str(folder), settings=settings, prompt=prompt, device=torch.device(device), dtype=dtype)  # fmt: skip

    @classmethod
    def official_model(cls, part: str, *, device: str | torch.device = "meta") -> torch.nn.Module:
        """The ``LatentVisualDiffusion`` of the official ``model.ckpt`` of ``part`` (1024/512/256)."""
        from .official import config_folder

        folder = config_folder(f"dynamicrafter-{dc_load.check_part(part)}")
        return dc_load.build(dc_config.read_config(folder), with_text=True, device=device)

    def save_pretrained(self, path: str) -> None:
        """Config folder + ``model.safetensors`` (official keys) + prompt embeddings."""
        folder = Path(path)
        dc_config.write_config(folder, self.pipe.config)
        C.save_tensors(folder / dc_config.WEIGHTS_FILE, self.pipe.state_dict())
        C.save_tensors(folder / C.PROMPT_FILE, self.prompt)
        C.write_settings(folder, {"adapter": self.registry_name, **self.settings})

    # ------------------------------------------------------------------ differentiable pieces
    @property
    def _sf(self) -> float:
        return self.pipe.scale_factor

    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        f = self.pipe.vae.scale_factor_spatial
        return (batch, self.num_frames, 4, self.height // f, self.width // f)

    def _condition(self, x: Tensor, frames: int) -> Conditioning:
        C.check_image(x)
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

    def _uncond_image_tokens(self, batch: int) -> Tensor:
        """Resampler tokens of the all-zero (gray) image, the official unconditional image."""
        if self._uncond_tokens is None:
            with torch.no_grad():
                zeros = torch.zeros(
                    1, 3, self.height, self.width, device=self.device, dtype=self.dtype
                )
                self._uncond_tokens = self.pipe.image_proj_model(self.pipe.embedder(zeros))
        return self._uncond_tokens.expand(batch, -1, -1)

    def _sample(self, cond: Conditioning, noise: Tensor, steps: int, eta: float, generator: torch.Generator | None) -> Tensor:  # fmt: skip
        lat, fs = cond.image_latents, cond.extra["fs"]
        if noise.shape[1] != lat.shape[1]:
            lat = (cond.first_latent * self._sf).unsqueeze(1).expand(-1, noise.shape[1], -1, -1, -1)
        ctx = self._context(cond)
        use_cfg = self.guidance_scale != 1.0
        if use_cfg:
            u = Conditioning(lat, cond.first_latent, self._uncond_image_tokens(lat.shape[0]))
            ctx = torch.cat([self._context(u, negative=True), ctx])
            lat, fs = torch.cat([lat, lat]), torch.cat([fs, fs])

        def model_fn(z: Tensor, t: Tensor) -> tuple[Tensor, Tensor | None]:
            if not use_cfg:
                return self._unet(z, lat, t.float(), ctx, fs), None
            uncond, out = self._unet(torch.cat([z, z]), lat, t.float().repeat(2), ctx, fs).chunk(2)
            return out, uncond

        buffers = {"alphas_cumprod": self.pipe.alphas_cumprod}
        if self.pipe.use_dynamic_rescale:
            buffers["scale_arr"] = self.pipe.scale_arr
        return dc_ddim.sample(
            model_fn, noise.to(self.device, self.dtype), buffers, steps=steps,
            spacing=self.timestep_spacing, parameterization=self.pipe.parameterization,
            guidance_scale=self.guidance_scale, guidance_rescale=self.guidance_rescale, eta=eta,
            generator=generator,
        )  # fmt: skip

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable DDIM steps (eta 0, CFG as configured) from pure ``noise``."""
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        return self._sample(cond, noise, steps, 0.0, None)

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latents ``(B,F,4,h,w)`` -> frames ``(B,F,3,H,W)`` in [0,1], frame by frame."""
        z = latents.to(self.device, self.dtype) / self._sf
        frames = torch.cat([self.pipe.vae.decode(f[None]) for f in z.flatten(0, 1)])
        return ((frames.float().unflatten(0, latents.shape[:2]) + 1) / 2).clamp(0, 1)

    # ------------------------------------------------------------------ introspection
    def layer_names(self, kind: str) -> list[str]:
        """See :mod:`.nets.dc_layers`: temporal/spatial self-attention, UNet blocks, VAE levels."""
        return dc_layers.layer_names(self.pipe, kind)

    def capture(self, hidden: Any = (), attention: Any = (), *, mode: str = "exact", max_queries: int = 256, generator: torch.Generator | None = None) -> Any:  # fmt: skip
        """Block outputs and self-attention maps: temporal ``(B·h·w, heads, F, F)`` (``pooled``:
        ``(B, heads, F, F)``), spatial ``(B·F, heads, Q, h·w)`` (``exact``/``sampled`` only)."""
        return dc_layers.capture(self, hidden, attention, mode, max_queries, generator)

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(self, x: Tensor, *, seed: int = 0, num_frames: int | None = None, num_inference_steps: int | None = None) -> Tensor:  # fmt: skip
        """The official sampling (DDIM, eta, CFG, rescale) on the 8-bit working-size image.

        Shape: ``x (B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        C.check_image(x)
        img = (self.prepare(x.detach().to(self.device, self.dtype)) * 255).round() / 255
        frames = num_frames or self.num_frames
        cond = self._condition(img, frames)
        gen = torch.Generator(self.device).manual_seed(seed)
        f = self.pipe.vae.scale_factor_spatial
        shape = (img.shape[0], frames, 4, self.height // f, self.width // f)
        noise = torch.randn(shape, generator=gen, device=self.device, dtype=self.dtype)
        steps = num_inference_steps or self.num_inference_steps
        return self.decode(self._sample(cond, noise, steps, float(self.eta), gen))
