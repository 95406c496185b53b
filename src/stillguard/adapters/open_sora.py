"""Open-Sora 1.2 image-to-video adapter (``open-sora-1.2``), on stillguard's own STDiT3 + VAE.

Target: hpcaitech/Open-Sora v1.2 (STDiT3-XL/2: README "1.1B", 1,207,643,972 parameters counted;
video VAE "384M": 393,341,007 counted; rectified flow), one of the three models of Anti-I2V
(arXiv 2603.24570). Open-Sora is not in diffusers: the networks are re-implemented in
:mod:`.nets` with the official parameter names, so the official safetensors load with
``strict=True`` (see :meth:`OpenSora12.official_model`). Weights: safetensors only, from a local
folder (layout in :mod:`.nets.opensora_pipeline`) or the local Hugging Face cache, never
downloaded here, never pickles or remote code.

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

import contextlib
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError, ModelError
from ..registry import ADAPTERS, close_matches
from . import _common as C
from ._attention import Recorder, find_layer
from .base import Adapter, Captured, Conditioning, Denoised
from .nets import opensora_pipeline as P
from .nets import opensora_rflow as RF
from .nets.opensora_capture import capture_stdit3, layer_names

_DEFAULTS = dict(
    # configs/opensora-v1-2/inference/sample.py: 240p at 9:16 (aspect.py: 240x426), "2s" = 51 fr.
    height=240, width=426, num_frames=51, fps=24, guidance_scale=7.0, num_inference_steps=30,
)  # fmt: skip


@ADAPTERS.register("open-sora-1.2")
class OpenSora12(Adapter):
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
        C.freeze(pipe.transformer, pipe.vae)
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

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str | None = None,
        prompt_embeds: Tensor | None = None,
        prompt_mask: Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        opt_num_frames: int | None = None,
        fps: float | None = None,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        gradient_checkpointing: bool = False,
    ) -> OpenSora12:
        """Load a local folder (layout: :mod:`.nets.opensora_pipeline`).

        The text condition is, in order: ``prompt_embeds`` (+ ``prompt_mask``); ``prompt``
        embedded with the folder's T5 (``text_encoder/``, ``tokenizer/``); the folder's
        ``prompt_embeds.safetensors``; else zeros with an all-True mask. The generation settings
        override the folder's ``stillguard.json`` (defaults: v1.2's ``sample.py``);
        ``opt_num_frames`` sets the frame count used while optimising (default ``num_frames``);
        ``gradient_checkpointing`` recomputes STDiT3 blocks in backward (memory for time).

        ``"hpcai-tech/OpenSora-STDiT-v3"`` (the default model) loads both official repositories
        from the local Hugging Face cache, never downloading (a ``prompt`` then needs T5 in a folder).

        Raises:
            ModelError: another hub id, a cache miss, pickles only, no or mismatched weights.
        """
        dtype, device = C.resolve_dtype(dtype), torch.device(device)
        model_id, folder = C.resolve_model(model)
        if (folder is None and model_id != cls.default_model) or model_id == "toy":
            raise ModelError(
                f"open-sora-1.2 loads {cls.default_model} (from the local Hugging Face cache) or "
                f"a local folder, got {model!r}: download hpcai-tech/OpenSora-STDiT-v3 into "
                "<folder>/transformer and hpcai-tech/OpenSora-VAE-v1.2 into <folder>/vae, add "
                "model_index.json (see stillguard.adapters.nets.opensora_pipeline)"
            )
        if folder is None:
            pipe = P.load_from_hub_cache(device, dtype)
        else:
            pipe = P.load(folder, device, dtype)
        file = None if folder is None else folder / C.PROMPT_FILE
        if prompt_embeds is None and prompt is not None:
            length = pipe.transformer.config.model_max_length
            where = folder or Path(model_id)  # a hub id has no T5 here: embed_prompt says so
            prompt_embeds, prompt_mask = P.embed_prompt(where, prompt, length, device, dtype)
        elif prompt_embeds is None and file is not None and file.is_file():
            saved = C.load_tensors(file)
            prompt_embeds, prompt_mask = saved["prompt_embeds"], saved.get("prompt_mask")
        pipe.transformer.gradient_checkpointing = gradient_checkpointing
        given = dict(
            height=height, width=width, num_frames=num_frames, opt_num_frames=opt_num_frames,
            fps=fps, guidance_scale=guidance_scale, num_inference_steps=num_inference_steps,
        )  # fmt: skip
        stored = {**C.read_settings(folder), **{k: v for k, v in given.items() if v is not None}}
        return cls(pipe, model_id=model_id, prompt_embeds=prompt_embeds, prompt_mask=prompt_mask,
                   settings=stored, device=device, dtype=dtype)  # fmt: skip

    @classmethod
    def from_config(
        cls,
        folder: str | Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> OpenSora12:
        """Random weights from a config-only folder (e.g. ``configs/open-sora-1.2``); zero prompt
        embeddings of the published shape ``(1, 300, 4096)``."""
        folder = Path(folder)
        pipe = P.build(*P.read_configs(folder), device=device)
        pipe.to(device, C.resolve_dtype(dtype))
        settings = {**C.read_settings(folder), **options}
        return cls(pipe, model_id=str(folder), prompt_embeds=None, prompt_mask=None,
                   settings=settings, device=torch.device(device), dtype=C.resolve_dtype(dtype))  # fmt: skip

    @classmethod
    def official_model(cls, part: str, *, device: str | torch.device = "meta") -> torch.nn.Module:
        """``"stdit3"``: STDiT3-XL/2 (``hpcai-tech/OpenSora-STDiT-v3``); ``"vae"``: the whole
        ``VideoAutoencoderPipeline`` (``hpcai-tech/OpenSora-VAE-v1.2``), built from the shipped
        real configuration; ``state_dict()`` keys and shapes are the official ones."""
        from .official import real_config

        parts = {"stdit3": 0, "vae": 1}
        if part not in parts:
            raise InputError(
                f"unknown open-sora-1.2 part {part!r}: {close_matches(part, list(parts))}"
            )
        stdit, vae, sched = P.read_configs(real_config(cls.registry_name))
        pipe = P.build(stdit, vae, sched, device=device)
        return (pipe.transformer, pipe.vae)[parts[part]]

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> OpenSora12:
        """64×64 px, 17 frames (5 latent frames of 4×4 tokens), 2+2 blocks of width 32, 4 text
        tokens of width 16 (no T5); 3 steps, the real CFG 7, fps 24 and timestep transform."""
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            pipe = P.build(P.TINY_STDIT3, P.TINY_VAE, RF.RFlowConfig(num_sampling_steps=3))
            embeds = torch.randn(1, P.TINY_STDIT3.model_max_length, P.TINY_STDIT3.caption_channels)
        settings = dict(height=64, width=64, num_frames=17, num_inference_steps=3)
        device = torch.device(device)
        pipe.to(device)
        return cls(pipe, model_id="tiny", prompt_embeds=embeds, prompt_mask=None,
                   settings=settings, device=device, dtype=torch.float32)  # fmt: skip

    def save_pretrained(self, path: str) -> None:
        """Folder layout of :mod:`.nets.opensora_pipeline`, prompt embeds, ``stillguard.json``."""
        folder = Path(path)
        P.save(self.pipe, folder)
        C.save_tensors(folder / C.PROMPT_FILE, {
            "prompt_embeds": self.prompt_embeds, "prompt_mask": self.prompt_mask.to(torch.uint8),
        })  # fmt: skip
        keys = ["height", "width", "num_frames", "opt_num_frames", "fps", "guidance_scale",
                "num_inference_steps"]  # fmt: skip
        C.write_settings(
            folder, {"adapter": self.registry_name, **{k: getattr(self, k) for k in keys}}
        )

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
        C.check_image(x)
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
        # deterministic function of ``noise``
        gen = torch.Generator(self.device).manual_seed(0)
        out = RF.sample(self._cfg_velocity, z.transpose(1, 2), ts, cond_frames=1, generator=gen)
        return out.transpose(1, 2)

    # ------------------------------------------------------------------ introspection
    def layer_names(self, kind: str) -> list[str]:
        """Names per kind (see the module docstring); VAE names start with ``vae.``."""
        return layer_names(self.pipe.transformer, self.pipe.vae, kind)

    def capture(
        self,
        hidden: Sequence[str] = (),
        attention: Sequence[str] = (),
        *,
        mode: str = "exact",
        max_queries: int = 256,
        generator: torch.Generator | None = None,
    ) -> contextlib.AbstractContextManager[Captured]:
        """Record pair outputs ``(B, T·S, D)``, VAE layer outputs and self-attention maps
        (shapes and layouts: :mod:`.nets.opensora_capture`)."""
        model = self.pipe.transformer
        attn = {n: find_layer(self, n, ["attention"], model) for n in attention}
        hid = {n: find_layer(self, n, ["hidden", "vae"], model) for n in hidden}
        return capture_stdit3(model, attn, hid, Recorder(Captured(), mode, max_queries, generator))

    # ------------------------------------------------------------------ generation
    @torch.no_grad()
    def generate(
        self,
        x: Tensor,
        *,
        seed: int = 0,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
    ) -> Tensor:
        """v1.2's I2V sampling (``RFLOW.sample`` with mask strategy "0"), seeded: the photo is
        encoded with sampled posteriors, noise drawn, 30 (configured) CFG Euler steps, decoded.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        C.check_image(x)
        frames = num_frames or self.num_frames
        gen = torch.Generator(self.device).manual_seed(seed)
        img = self.prepare(x.detach().to(self.device, torch.float32)).clamp(0, 1)
        img = img.to(self.dtype) * 2 - 1
        ref = self.pipe.vae.encode(img.unsqueeze(2), generator=gen)
        b, c, _, h, w = ref.shape
        z = torch.randn(b, c, self._latent_frames(frames), h, w, generator=gen, device=self.device)
        z = torch.cat([ref, z.to(self.dtype)[:, :, 1:]], 2)
        steps = num_inference_steps or self.num_inference_steps
        ts = RF.sampling_timesteps(
            steps, self.height, self.width, frames, self.pipe.scheduler, self.device, self.dtype
        )
        z = RF.sample(self._cfg_velocity, z, ts, cond_frames=1, generator=gen)
        video = self.pipe.vae.decode(z, frames).transpose(1, 2).float()
        if video.shape[-2:] != (self.height, self.width):  # e.g. 426 px -> 53 latents -> 424 px
            video = torch.nn.functional.interpolate(
                video.flatten(0, 1), size=(self.height, self.width), mode="bilinear"
            ).unflatten(0, video.shape[:2])
        return ((video + 1) / 2).clamp(0, 1)
