"""Wan image-to-video adapter (``wan-i2v``) around diffusers' ``WanImageToVideoPipeline``.

Targets (config folders shipped under ``adapters/configs/``; weights are never downloaded):
    * Wan2.1-I2V-14B-480P / -720P (``Wan-AI/Wan2.1-I2V-14B-{480P,720P}-Diffusers``): the photo
      enters twice. (1) Its VAE latent: the pipeline encodes the video ``[photo, 0, 0, ...]``
      (causal Wan VAE, so every latent frame depends on the photo) and concatenates
      ``noise(16) | mask(4) | latent(16)`` = 36 input channels. (2) CLIP ViT-H/14
      ``hidden_states[-2]`` (257 tokens × 1280) goes through each block's image cross-attention
      (``add_k_proj``/``add_v_proj``). :meth:`encode` redoes the CLIP resize/crop/normalise in
      torch, so the gradient reaches the photo through both paths.
    * Wan2.2-I2V-A14B (``Wan-AI/Wan2.2-I2V-A14B-Diffusers``): the same concat, no CLIP, and two
      14B experts: ``transformer`` for ``t >= boundary_ratio·1000`` (high noise), ``transformer_2``
      below. :meth:`denoise` and :meth:`rollout` route every timestep to its expert (CFG scale
      ``guidance_scale_2`` in the low-noise stage, as the pipeline) and :meth:`capture` hooks the
      same-named layers of both experts, so records follow the expert that ran.
    * Wan2.2-TI2V-5B (``Wan-AI/Wan2.2-TI2V-5B-Diffusers``, ``expand_timesteps``): latent frame 0
      is *replaced* by the photo's latent (a 1-frame encode) and its tokens get timestep 0.
    * SkyReels-V2-I2V (``Skywork/SkyReels-V2-I2V-*-Diffusers``) conditions exactly like Wan2.1
      (CLIP ``hidden_states[-2]`` + 36-channel concat, Wan VAE) but diffusers gives it its own
      classes: ``SkyReelsV2ImageToVideoPipeline``, ``SkyReelsV2Transformer3DModel`` (Wan's blocks
      plus an optional fps embedding, ``inject_sample_info``, and a block-causal mask for
      diffusion forcing) with ``SkyReelsV2AttnProcessor``. Covering it needs a subclass that
      loads that pipeline class and accepts that processor in :meth:`WanI2V.capture` (its
      q/k/RoPE math is Wan's; the block-causal mask would have to enter the recorded maps);
      it is not loaded today.

    TI2V is a *mode* of this adapter, not a second name: the pipeline class is the same and the
    mode is a property of the checkpoint (``expand_timesteps`` in its ``model_index.json``), so
    pointing ``wan-i2v`` at any Wan folder does the right thing and no name can be mismatched with
    a folder. :attr:`WanI2V.flavour` says which design was found.

Attacks (capabilities). Vid-Freeze's "attention that synthesizes motion" is ``attn1``: full 3D
self-attention over the video tokens only (text and CLIP enter through ``attn2``), so it is
offered as ``attention-joint`` with ``layout.text = 0``; all blocks (40 / 40 per expert / 30).
Wan2.1 at 480p has 21·30·52 = 32,760 tokens: use ``sampled`` (exact rows) or ``pooled``
(frame-pooled) capture. Anti-I2V's IRC pulls the last three blocks (``blocks.37..39`` of the
40-block 14B models, ``blocks.27..29`` of TI2V-5B; on A14B those of the expert the timestep
selects) onto the shallow "layer 3": ``blocks.2`` with the method's default ``irc_ref=2`` (1-based
reading), ``irc_ref=3`` for the 0-based one; the paper does not say which. IRA uses all blocks
plus ``vae.encoder.down_blocks.*`` (the causal encoder runs chunk by chunk: 1 + (F−1)/4 records
per layer and encode). The Wan VAE has no gradient checkpointing (``_supports_gradient_checkpointing
= False``): encoding 81 frames with grad is what costs memory; ``condition_grad="first"`` keeps
the gradient on latent frame 0 only (the other frames are encoded without grad; values exact).

Memory switches (every constructor; not saved): ``gradient_checkpointing`` recomputes each
transformer block in backward (diffusers' ``enable_gradient_checkpointing``, every expert; values
exact); ``vae_slicing`` encodes batch items one by one (exact). ``vae_tiling`` is refused:
diffusers' ``AutoencoderKLWan`` tiling encodes 256-px tiles at a 192-px stride and blends the
overlaps, so the latent changes above 256 px, and under autograd every tile's activations are kept
for backward anyway (about (256/192)^2 = 1.8x the encoder's activations), so it is not expected to
lower a protection step's peak.

Choices where the pipeline leaves room:
    * latents use the VAE posterior mode (the pipeline does too: ``sample_mode="argmax"``);
    * timesteps are ``t = 1000·σ'`` with ``σ ~ U(0,1)`` shifted by the scheduler's ``flow_shift``
      ``s``: ``σ' = sσ/(1+(s−1)σ)`` (the sampler's own spacing, made continuous); on Wan2.2-A14B
      a draw reaches the high-noise expert when ``σ' >= 0.9``: 36% of draws at s = 5, 25% at 3;
    * flow matching: ``noisy = (1−σ)z0 + σ·noise``, ``pred`` = velocity, ``target = noise − z0``,
      ``x0 = noisy − σ·pred``; on TI2V's frame 0 (timestep 0, output discarded by the pipeline)
      ``target`` equals the detached prediction, so losses ignore it; :meth:`denoise` is
      conditional only (no CFG);
    * :meth:`rollout` steps a private copy of the pipeline's UniPC scheduler (order 2, flow
      sigmas), differentiably, with CFG batched as ``[negative, prompt]``;
    * prompts are embedded once with UMT5 when the adapter is built, padded to 512 tokens;
      ftfy is optional (used only if installed).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import ADAPTERS, close_matches
from . import _wan_build as B
from . import _wan_tiny
from ._shared.folders import read_settings
from ._shared.load import (
    memory_switches,
    merged_settings,
    prompt_pair,
    resolve_dtype,
    resolve_source,
    save_pipeline,
    tiny_adapter,
)
from ._wan_capture import WanCapture

logger = logging.getLogger(__name__)

_SETTINGS = (
    "height", "width", "num_frames", "opt_num_frames", "num_inference_steps", "guidance_scale",
    "guidance_scale_2", "flow_shift", "condition_grad",
)  # fmt: skip
#: memory switches (no effect on values; never saved)
_SWITCHES = ("gradient_checkpointing", "vae_slicing")


@ADAPTERS.register("wan-i2v")
class WanI2V(WanCapture):
    """Wan 2.1 / 2.2 image-to-video (see the module docstring for the three flavours)."""

    capabilities = frozenset(
        {"hidden-states", "attention-joint", "vae-features", "image-embeds", "rollout"}
    )
    default_model = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
    real_models = {
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": "wan2.1-i2v-14b-480p",
        "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers": "wan2.1-i2v-14b-720p",
        "Wan-AI/Wan2.2-I2V-A14B-Diffusers": "wan2.2-i2v-a14b",
        "Wan-AI/Wan2.2-TI2V-5B-Diffusers": "wan2.2-ti2v-5b",
    }

    # ------------------------------------------------------------------ construction
    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str = "",
        negative_prompt: str = "",
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        opt_num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        guidance_scale_2: float | None = None,
        flow_shift: float | None = None,
        condition_grad: str | None = None,
        **unknown: Any,
    ) -> WanI2V:
        """Load a hub id (local cache only) or a local ``save_pretrained`` folder.

        Settings left as ``None`` come from the folder's ``stillguard.json``, else from the
        pipeline's defaults. ``guidance_scale_2`` is the low-noise stage's CFG scale (A14B);
        ``flow_shift`` replaces the scheduler's shift (the model authors' value when the
        converted folder's differs); ``condition_grad="first"`` limits the VAE gradient to the
        photo's latent frame (memory).

        Raises:
            InputError: an unknown option.
            ModelError: no weights, pickle-only weights, or no way to embed the prompt.
        """
        cls._check_settings(unknown)
        settings = dict(
            height=height, width=width, num_frames=num_frames, opt_num_frames=opt_num_frames,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            guidance_scale_2=guidance_scale_2, flow_shift=flow_shift,
            condition_grad=condition_grad,
        )  # fmt: skip
        model_id, folder, src, device, dtype = resolve_source(
            model, device, dtype, cogvideox_only=True
        )
        pipe = B.load_pipeline(src, dtype, local_only=True)
        pipe.to(device)
        stored = merged_settings(folder, settings)

        def embed() -> tuple[Tensor, Tensor]:
            both = B.embed_prompts(src, [prompt, negative_prompt], device, dtype, local_only=True)
            return both[:1], both[1:]

        prompt_embeds, negative_prompt_embeds = prompt_pair(
            folder, prompt, prompt_embeds, negative_prompt_embeds, embed
        )
        cls._switch(pipe, gradient_checkpointing, vae_slicing)
        return cls(
            pipe, model_id=model_id, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds, settings=stored, device=device,
            dtype=dtype,
        )  # fmt: skip

    @classmethod
    def from_config(
        cls,
        folder: str | Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        seed: int = 0,
        **settings: Any,
    ) -> WanI2V:
        """Every component from a config-only folder with random weights (seeded), or nothing
        allocated on ``device="meta"`` or under ``FakeTensorMode``; prompt embeddings are zeros
        ``(1, 512, text_dim)``. Under ``FakeTensorMode`` :meth:`denoise` runs (pass timesteps
        built from Python numbers: routing to an expert reads their value); :meth:`rollout`
        does not (the scheduler's bookkeeping reads tensor values). ``settings`` may hold the
        memory switches of :meth:`from_pretrained`."""
        settings = dict(settings)
        cls._check_settings({k: v for k, v in settings.items() if k not in _SWITCHES})
        switches = [bool(settings.pop(k, False)) for k in _SWITCHES]
        dtype, device = resolve_dtype(dtype), torch.device(device)
        path = Path(folder)
        pipe = B.pipeline_from_config(path, device, dtype, seed)
        cls._switch(pipe, *switches)
        stored = read_settings(path)
        stored.update({k: v for k, v in settings.items() if v is not None})
        text_dim = cls._experts_of(pipe)[0].config.text_dim
        zeros = torch.zeros(1, B.TEXT_TOKENS, text_dim, device=device, dtype=dtype)
        return cls(
            pipe, model_id=str(folder), prompt_embeds=zeros, negative_prompt_embeds=zeros,
            settings=stored, device=device, dtype=dtype,
        )  # fmt: skip

    @classmethod
    def tiny(
        cls,
        seed: int = 0,
        *,
        device: str | torch.device = "cpu",
        flavour: str = "wan2.1",
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
    ) -> WanI2V:
        """64×64, 9 frames (3 latent frames), 4 blocks of 2×12 heads, prompt embeds (1, 512, 16).

        ``flavour``: ``"wan2.1"`` (CLIP + concat; the registry's tiny), ``"wan2.2-a14b"`` (two
        experts, boundary 0.9) or ``"wan2.2-ti2v"`` (first-frame replacement, 16× VAE). CFG is on
        (``guidance_scale=2``) so its code runs; 2 sampler steps.
        """
        pipe, embeds = _wan_tiny.wan_pipe(seed, flavour)
        cls._switch(pipe, gradient_checkpointing, vae_slicing)
        settings = dict(
            height=_wan_tiny.SIZE, width=_wan_tiny.SIZE, num_frames=_wan_tiny.FRAMES,
            num_inference_steps=2, guidance_scale=2.0,
        )  # fmt: skip
        return tiny_adapter(
            cls, pipe, device, prompt_embeds=embeds,
            negative_prompt_embeds=torch.zeros_like(embeds), settings=settings,
        )  # fmt: skip

    @classmethod
    def _switch(cls, pipe: Any, checkpointing: bool, slicing: bool) -> None:
        """Apply the memory switches: checkpoint every expert's blocks, slice the VAE."""
        for tr in cls._experts_of(pipe):
            memory_switches(pipe, tr, gradient_checkpointing=checkpointing)
        memory_switches(pipe, None, vae_slicing=slicing)

    @classmethod
    def _check_settings(cls, settings: dict[str, Any]) -> None:
        """Raise :class:`InputError` for option names that are not settings."""
        if settings.get("vae_tiling"):
            raise InputError(
                "wan-i2v has no VAE tiling: diffusers' Wan VAE tiling blends overlapping tiles "
                "(the latent changes) and under autograd keeps every tile's activations; use "
                "vae_slicing, gradient_checkpointing, fewer frames or a lower resolution instead"
            )
        unknown = sorted(set(settings) - set(_SETTINGS))
        if unknown:
            raise InputError(
                f"unknown wan-i2v option(s) {unknown}: {close_matches(unknown[0], list(_SETTINGS))}"
            )

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), prompt embeds and ``stillguard.json`` generation defaults."""
        prompt = {
            "prompt_embeds": self.prompt_embeds,
            "negative_prompt_embeds": self.negative_prompt_embeds,
        }
        save_pipeline(self, path, prompt, {k: getattr(self, k) for k in _SETTINGS})
