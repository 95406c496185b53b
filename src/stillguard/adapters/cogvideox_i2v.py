"""CogVideoX image-to-video adapter (``cogvideox-i2v``) around diffusers' ``CogVideoXImageToVideoPipeline``.

Target: THUDM/CogVideoX-5b-I2V (CogVideoX, arXiv 2408.06072), the model attacked by Vid-Freeze
(arXiv 2509.23279) and Anti-I2V (arXiv 2603.24570). Needs diffusers; weights load as safetensors
only and never with remote code.

Choices where the pipeline leaves room:
    * the image latent uses the VAE posterior **mode** (the pipeline samples it with the run's
      generator); :meth:`CogVideoXI2V.generate` still runs the pipeline as-is, sampling included;
    * the prompt is embedded once, without grad, when the adapter is built (T5 is then dropped);
      ``negative_prompt_embeds`` default to the embedding of ``""`` (zeros when no T5 exists);
    * :meth:`denoise` is conditional only (no CFG); :meth:`rollout` applies CFG as configured and
      always steps with DDIM (eta 0), so it is deterministic given ``noise``;
    * ``opt_num_frames`` (default ``num_frames``) sets the frame count used while optimising:
      :meth:`latent_shape`, :meth:`encode` (zero padding) and the default ``z0`` of :meth:`denoise`
      use its latent frames, and RoPE is built for whatever frame count reaches the transformer;
      :meth:`generate` uses ``num_frames``.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import CapabilityError, InputError, ModelError
from ..registry import ADAPTERS, close_matches
from . import _common as C
from . import _tiny
from ._attention import Recorder, RecordingCogVideoXAttnProcessor, capture_context, find_layer
from .base import Adapter, Captured, Conditioning, Denoised

logger = logging.getLogger(__name__)


@ADAPTERS.register("cogvideox-i2v")
class CogVideoXI2V(Adapter):
    """CogVideoX-I2V: joint text+video 3D attention transformer, v-prediction, DDIM sampling."""

    capabilities = frozenset({"hidden-states", "attention-joint", "vae-features", "rollout"})

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
        from diffusers import CogVideoXDDIMScheduler

        self.pipe, self.model_id, self.device, self.dtype = pipe, model_id, device, dtype
        pipe.set_progress_bar_config(disable=True)
        C.freeze(pipe.vae, pipe.transformer)
        tr, vae = pipe.transformer.config, pipe.vae.config
        sf = pipe.vae_scale_factor_spatial
        self.height = int(settings.get("height") or tr.sample_height * sf)
        self.width = int(settings.get("width") or tr.sample_width * sf)
        self.num_frames = int(settings.get("num_frames") or tr.sample_frames)
        self.opt_num_frames = int(settings.get("opt_num_frames") or self.num_frames)
        self.guidance_scale = float(settings.get("guidance_scale", 6.0))
        self.num_inference_steps = int(settings.get("num_inference_steps", 50))
        for n in (self.num_frames, self.opt_num_frames):
            if (n - 1) % vae.temporal_compression_ratio:
                raise InputError(
                    f"num_frames={n} must be 1 + a multiple of {vae.temporal_compression_ratio}"
                )
        pe = prompt_embeds.to(device, dtype)
        self.prompt_embeds = pe
        ne = negative_prompt_embeds
        self.negative_prompt_embeds = torch.zeros_like(pe) if ne is None else ne.to(device, dtype)
        self._rollout_scheduler = CogVideoXDDIMScheduler.from_config(pipe.scheduler.config)
        self._rope: dict[int, Any] = {}

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str = "",
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        opt_num_frames: int | None = None,
        guidance_scale: float | None = None,
        num_inference_steps: int | None = None,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
    ) -> CogVideoXI2V:
        """Load a hub id, a local ``save_pretrained`` folder, or ``"toy"`` (the shipped model).

        Options left as ``None`` come from the folder's ``stillguard.json``, else from the model.

        Raises:
            ModelError: no weights, pickle-only weights, or no way to embed the prompt.
        """
        from diffusers import CogVideoXImageToVideoPipeline

        dtype, device = C.resolve_dtype(dtype), torch.device(device)
        model_id, folder = C.resolve_model(model)
        src = str(folder) if folder is not None else model
        try:
            pipe = CogVideoXImageToVideoPipeline.from_pretrained(
                src, text_encoder=None, tokenizer=None, dtype=dtype, use_safetensors=True
            )
        except (OSError, ValueError) as err:
            raise ModelError(f"cannot load CogVideoX-I2V from {model!r}: {err}") from err
        pipe.to(device)
        settings = C.read_settings(folder)
        file = folder / C.PROMPT_FILE if folder is not None else None
        if prompt_embeds is None and file is not None and file.is_file() and not prompt:
            saved = C.load_tensors(file)
            prompt_embeds = saved["prompt_embeds"]
            if negative_prompt_embeds is None:
                negative_prompt_embeds = saved.get("negative_prompt_embeds")
        elif prompt_embeds is None:
            prompt_embeds, neg = C.embed_prompt(pipe, src, prompt, device, dtype)
            negative_prompt_embeds = (
                negative_prompt_embeds if negative_prompt_embeds is not None else neg
            )
        given = dict(
            height=height,
            width=width,
            num_frames=num_frames,
            opt_num_frames=opt_num_frames,
            guidance_scale=guidance_scale,
            num_inference_steps=num_inference_steps,
        )
        settings.update({k: v for k, v in given.items() if v is not None})
        if gradient_checkpointing:
            pipe.transformer.enable_gradient_checkpointing()
        if vae_slicing:
            pipe.vae.enable_slicing()
        if vae_tiling:
            pipe.vae.enable_tiling()
        return cls(
            pipe,
            model_id=model_id,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            settings=settings,
            device=device,
            dtype=dtype,
        )

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> CogVideoXI2V:
        """64×64, 9 frames (3 latent frames), 2 layers of 2×16 heads, 4 text tokens; random weights.

        Configs follow diffusers' own fast tests with 5b-I2V's switches (RoPE + learned positional
        embeddings, zero-SNR v-prediction DDIM). CFG is on (``guidance_scale=2``) so its code runs.
        """
        pipe, prompt_embeds = _tiny.cogvideox_pipe(seed)
        settings = dict(guidance_scale=2.0, num_inference_steps=4)
        device = torch.device(device)
        pipe.to(device)
        return cls(
            pipe,
            model_id="tiny",
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=torch.zeros_like(prompt_embeds),
            settings=settings,
            device=device,
            dtype=torch.float32,
        )

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), prompt embeds and ``stillguard.json`` generation defaults."""
        folder = Path(path)
        self.pipe.save_pretrained(str(folder), safe_serialization=True)
        C.save_tensors(
            folder / C.PROMPT_FILE,
            {
                "prompt_embeds": self.prompt_embeds,
                "negative_prompt_embeds": self.negative_prompt_embeds,
            },
        )
        C.write_settings(
            folder,
            dict(
                adapter=self.registry_name,
                height=self.height,
                width=self.width,
                num_frames=self.num_frames,
                opt_num_frames=self.opt_num_frames,
                guidance_scale=self.guidance_scale,
                num_inference_steps=self.num_inference_steps,
            ),
        )

    # ------------------------------------------------------------------ helpers
    def _latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _scale(self, lat: Tensor) -> Tensor:
        sf = self.pipe.vae_scaling_factor_image
        return lat / sf if self.pipe.vae.config.invert_scale_latents else lat * sf

    def _pad(self, scaled: Tensor, frames: int) -> Tensor:
        """Scaled 1-frame latent ``(B,C,h,w)`` -> zero-padded ``(B,F_lat,C,h,w)`` as the pipeline."""
        pad = scaled.new_zeros(scaled.shape[0], frames - 1, *scaled.shape[1:])
        lat = torch.cat([scaled.unsqueeze(1), pad], 1)
        p_t = self.pipe.transformer.config.patch_size_t
        if p_t is not None and frames % p_t:
            lat = torch.cat([lat[:, : frames % p_t], lat], 1)
        return lat

    def _embeds(self, batch: int, negative: bool = False) -> Tensor:
        e = self.negative_prompt_embeds if negative else self.prompt_embeds
        return e.expand(batch, -1, -1) if e.shape[0] == 1 else e

    def _forward(self, latents: Tensor, image_latents: Tensor, t: Tensor, embeds: Tensor) -> Tensor:
        frames = latents.shape[1]
        if frames not in self._rope:
            self._rope[frames] = self.pipe._prepare_rotary_positional_embeddings(
                self.height, self.width, frames, self.device
            )
        cfg = self.pipe.transformer.config
        ofs = None if cfg.ofs_embed_dim is None else latents.new_full((1,), 2.0)
        return self.pipe.transformer(
            hidden_states=torch.cat([latents, image_latents], 2),
            encoder_hidden_states=embeds,
            timestep=t.expand(latents.shape[0]),
            ofs=ofs,
            image_rotary_emb=self._rope[frames],
            return_dict=False,
        )[0]

    # ------------------------------------------------------------------ differentiable pieces
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        frames = self._latent_frames(self.opt_num_frames)
        p_t = self.pipe.transformer.config.patch_size_t
        frames += frames % p_t if p_t else 0
        sf = self.pipe.vae_scale_factor_spatial
        ch = self.pipe.transformer.config.in_channels // 2
        return (batch, frames, ch, self.height // sf, self.width // sf)

    def encode(self, x: Tensor) -> Conditioning:
        """Image -> 1-frame VAE encode (posterior mode) -> scaled, zero-padded image latents.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)``, ``first_latent (B,C,h,w)``.
        """
        C.check_image(x)
        img = self.prepare(x.to(self.device, self.dtype)) * 2 - 1
        first = self.pipe.vae.encode(img.unsqueeze(2)).latent_dist.mode()[:, :, 0]
        return self.condition_on_latent(first)

    def condition_on_latent(self, first_latent: Tensor) -> Conditioning:
        """The conditioning the pipeline builds from an (unscaled) 1-frame image latent.

        Lets latent-space studies (``benchmarks/latent_bound.py``) move the latent directly.

        Shape:
            first_latent ``(B,C,h,w)`` -> ``image_latents (B,F_lat,C,h,w)``.
        """
        frames = self._latent_frames(self.opt_num_frames)
        return Conditioning(
            image_latents=self._pad(self._scale(first_latent), frames), first_latent=first_latent
        )

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> scaled posterior-mode latent. Shape: ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        b, f = video.shape[:2] if video.ndim == 5 else (0, 0)
        if video.ndim != 5 or (f - 1) % self.pipe.vae_scale_factor_temporal:
            raise InputError(
                f"expected a video (B, F, 3, H, W) with F = 1 + k*"
                f"{self.pipe.vae_scale_factor_temporal}, got {tuple(video.shape)}"
            )
        frames = self.prepare(video.to(self.device, self.dtype).flatten(0, 1)).unflatten(0, (b, f))
        lat = self.pipe.vae.encode((frames * 2 - 1).permute(0, 2, 1, 3, 4)).latent_dist.mode()
        return self._scale(lat.permute(0, 2, 1, 3, 4))

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """Uniform integer timesteps in ``[0, num_train_timesteps)``. Shape: ``(batch,)``."""
        n = self.pipe.scheduler.config.num_train_timesteps
        return torch.randint(0, n, (batch,), generator=generator, device=generator.device).to(
            self.device
        )

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """``noisy = add_noise(z0, noise, t)``; ``pred`` = v; ``target = get_velocity(z0, noise, t)``.

        ``z0`` defaults to the scaled image latent repeated over every latent frame (it keeps the
        gradient of ``x``; pass a detached one to cut it). ``x0 = sqrt(ᾱ)·noisy − sqrt(1−ᾱ)·v``.

        Shape:
            timestep ``(B,)`` or scalar; noise, z0 and every output ``(B,F_lat,C,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        image_latents = cond.image_latents
        scaled = image_latents[:, 0]
        if z0 is None:
            z0 = scaled.unsqueeze(1).expand(-1, image_latents.shape[1], -1, -1, -1)
        z0 = z0.to(self.device, self.dtype)
        if z0.shape[1] != image_latents.shape[1]:
            if self.pipe.transformer.config.patch_size_t is not None:
                raise InputError("z0 must have as many latent frames as the conditioning")
            image_latents = self._pad(scaled, z0.shape[1])
        t = torch.as_tensor(timestep, device=self.device).long().reshape(-1).expand(z0.shape[0])
        noise = noise.to(self.device, self.dtype)
        sch = self.pipe.scheduler
        noisy = sch.add_noise(z0, noise, t)
        pred = self._forward(noisy, image_latents, t, self._embeds(z0.shape[0]))
        a = sch.alphas_cumprod.to(self.device, self.dtype)[t].view(-1, 1, 1, 1, 1)
        x0 = a.sqrt() * noisy - (1 - a).sqrt() * pred
        return Denoised(pred=pred, target=sch.get_velocity(z0, noise, t), x0=x0, z0=z0, noisy=noisy)

    def rollout(self, x: Tensor | Conditioning, noise: Tensor, steps: int) -> Tensor:
        """``steps`` differentiable DDIM steps (CFG as configured) from pure ``noise``.

        Shape:
            noise ``(B,F_lat,C,h,w)`` -> final latent ``(B,F_lat,C,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        sch = self._rollout_scheduler
        sch.set_timesteps(steps, device=self.device)
        lat = noise.to(self.device, self.dtype) * sch.init_noise_sigma
        b, use_cfg = lat.shape[0], self.guidance_scale > 1
        img = (
            cond.image_latents
            if lat.shape[1] == cond.image_latents.shape[1]
            else self._pad(cond.image_latents[:, 0], lat.shape[1])
        )
        embeds = self._embeds(b)
        if use_cfg:
            img, embeds = torch.cat([img, img]), torch.cat([self._embeds(b, True), embeds])
        for t in sch.timesteps:
            inp = sch.scale_model_input(torch.cat([lat, lat]) if use_cfg else lat, t)
            v = self._forward(inp, img, t, embeds)
            if use_cfg:
                uncond, text = v.chunk(2)
                v = uncond + self.guidance_scale * (text - uncond)
            lat = sch.step(v, t, lat, return_dict=False)[0].to(self.dtype)
        return lat

    def decode(self, latents: Tensor) -> Tensor:
        """Scaled latent video -> frames in [0, 1], as the pipeline decodes them (no rounding).

        Shape:
            latents ``(B,F_lat,C,h,w)`` -> video ``(B,F,3,H,W)``.
        """
        frames = self.pipe.decode_latents(latents.to(self.device, self.dtype))
        return ((frames.permute(0, 2, 1, 3, 4).float() + 1) / 2).clamp(0, 1)

    # ------------------------------------------------------------------ introspection
    def layer_names(self, kind: str) -> list[str]:
        n_blocks = len(self.pipe.transformer.transformer_blocks)
        if kind == "hidden":
            return [f"transformer_blocks.{i}" for i in range(n_blocks)]
        if kind in ("attention", "attention-joint"):
            return [f"transformer_blocks.{i}.attn1" for i in range(n_blocks)]
        if kind == "vae":
            return [
                f"vae.encoder.down_blocks.{i}"
                for i in range(len(self.pipe.vae.encoder.down_blocks))
            ]
        if kind in ("attention-temporal", "attention-spatial"):
            raise CapabilityError(
                f"{self.registry_name} has joint spatio-temporal attention only "
                f"(no {kind}): use kind='attention'"
            )
        raise InputError(
            f"unknown layer kind {kind!r}: {close_matches(kind, ['hidden', 'attention', 'vae'])}"
        )

    def capture(
        self,
        hidden: Sequence[str] = (),
        attention: Sequence[str] = (),
        *,
        mode: str = "exact",
        max_queries: int = 256,
        generator: torch.Generator | None = None,
    ) -> Any:
        """Record block outputs and joint attention maps; see :mod:`._attention` for the modes.

        Layout of a map's key axis: ``T`` text tokens, then ``F_lat`` frames of ``h/p·w/p`` tokens
        (``Captured.layout``); ``exact`` and ``sampled`` maps are ``(B, heads, Q, T + F_lat·n)``.
        """
        from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

        attn = {n: find_layer(self, n, ["attention"], self.pipe.transformer) for n in attention}
        for n, m in attn.items():
            if type(m.processor) is not CogVideoXAttnProcessor2_0:
                raise CapabilityError(
                    f"{n} uses {type(m.processor).__name__}; capture needs the stock "
                    "CogVideoXAttnProcessor2_0 (unfuse QKV projections first)"
                )
        hid = {n: find_layer(self, n, ["hidden", "vae"], self.pipe.transformer) for n in hidden}
        recorder = Recorder(Captured(), mode, max_queries, generator)
        p_t = self.pipe.transformer.config.patch_size_t or 1

        def layout(_m: Any, args: tuple, kwargs: dict) -> None:
            lat = kwargs.get("hidden_states", args[0] if args else None)
            recorder.context.update(token_frames=lat.shape[1] // p_t, batch=lat.shape[0])

        return capture_context(
            recorder,
            attn,
            lambda n, _m: RecordingCogVideoXAttnProcessor(recorder, n),
            hid,
            [(self.pipe.transformer, layout)],
        )

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
        """The pipeline's own sampling (CFG, DDIM, VAE sampling with a seeded generator).

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        C.check_image(x)
        img = self.prepare(x.detach().to(self.device, torch.float32)).clamp(0, 1).to(self.dtype)
        b = img.shape[0]
        video = self.pipe(
            image=img,
            prompt_embeds=self._embeds(b),
            negative_prompt_embeds=self._embeds(b, True),
            height=self.height,
            width=self.width,
            num_frames=num_frames or self.num_frames,
            num_inference_steps=num_inference_steps or self.num_inference_steps,
            guidance_scale=self.guidance_scale,
            output_type="pt",
            generator=torch.Generator(self.device).manual_seed(seed),
        ).frames
        return video.float().clamp(0, 1)
