"""Building the ``wan-i2v`` adapter (a mixin): from weights, from a config-only folder, tiny; saving.

Every constructor ends in ``cls(pipe, ...)`` with the pipeline, the prompt embeddings and the
settings, after the memory switches: ``gradient_checkpointing`` (every expert's blocks) and
``vae_slicing``; ``vae_tiling`` is refused (see the family's docstring).

* :meth:`~WanLoading.from_pretrained`: a hub id (local cache only) or a ``save_pretrained`` folder;
  the prompt is embedded once with the folder's UMT5 (:mod:`.._shared.umt5`), then dropped;
* :meth:`~WanLoading.from_config`: every component of a config-only folder with random weights
  (:func:`~stillguard.adapters._shared.build.config_pipeline`), zero prompt embeddings;
* :meth:`~WanLoading.tiny`: one tiny random model per flavour (:mod:`.tiny`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .._shared.build import config_pipeline
from .._shared.folders import read_settings
from .._shared.load import (
    memory_switches,
    merged_settings,
    open_pipeline,
    resolve_dtype,
    save_pipeline,
    tiny_adapter,
)
from .._shared.umt5 import TEXT_TOKENS, umt5_prompt_pair
from .._shared.wan_conditioning import check_options
from .tiny import FRAMES, SIZE, wan_pipe

#: generation settings an option or ``stillguard.json`` may set
_SETTINGS = (
    "height", "width", "num_frames", "opt_num_frames", "num_inference_steps", "guidance_scale",
    "guidance_scale_2", "flow_shift", "condition_grad",
)  # fmt: skip
#: memory switches (no effect on values; never saved)
_SWITCHES = ("gradient_checkpointing", "vae_slicing")


class WanLoading:
    """Constructors and ``save_pretrained`` of :class:`~.adapter.WanI2V` (a mixin)."""

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
    ) -> Any:
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
        from diffusers import WanImageToVideoPipeline

        # the image-to-video class also reads Wan2.2-TI2V-5B's folder (its model_index.json names
        # WanPipeline): the same components and expand_timesteps
        pipe, model_id, folder, src, device, dtype = open_pipeline(
            WanImageToVideoPipeline, model, device, dtype, "Wan image-to-video", refuse_toy=True,
            text_encoder=None, tokenizer=None,
        )  # fmt: skip
        stored = merged_settings(folder, settings)
        prompt_embeds, negative_prompt_embeds = umt5_prompt_pair(
            folder, src, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, device,
            dtype,
        )  # fmt: skip
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
    ) -> Any:
        """Every component from a config-only folder with random weights (seeded), or nothing
        allocated on ``device="meta"`` or under ``FakeTensorMode``; prompt embeddings are zeros
        ``(1, 512, text_dim)``. Under ``FakeTensorMode`` :meth:`denoise` runs (pass timesteps
        built from Python numbers: routing to an expert reads their value); :meth:`rollout`
        does not (the scheduler's bookkeeping reads tensor values). ``settings`` may hold the
        memory switches of :meth:`from_pretrained`."""
        settings = dict(settings)
        cls._check_settings({k: v for k, v in settings.items() if k not in _SWITCHES})
        switches = [bool(settings.pop(k, False)) for k in _SWITCHES]
        from diffusers import WanImageToVideoPipeline

        dtype, device = resolve_dtype(dtype), torch.device(device)
        path = Path(folder)
        pipe = config_pipeline(
            path, WanImageToVideoPipeline, seed=seed, device=device, dtype=dtype,
            skip=("text_encoder", "tokenizer"), needed=("transformer", "vae", "scheduler"),
            what="a Wan image-to-video",
        )  # fmt: skip
        cls._switch(pipe, *switches)
        stored = read_settings(path)
        stored.update({k: v for k, v in settings.items() if v is not None})
        text_dim = cls._experts_of(pipe)[0].config.text_dim
        zeros = torch.zeros(1, TEXT_TOKENS, text_dim, device=device, dtype=dtype)
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
    ) -> Any:
        """64×64, 9 frames (3 latent frames), 4 blocks of 2×12 heads, prompt embeds (1, 512, 16).

        ``flavour``: ``"wan2.1"`` (CLIP + concat; the registry's tiny), ``"wan2.2-a14b"`` (two
        experts, boundary 0.9) or ``"wan2.2-ti2v"`` (first-frame replacement, 16× VAE). CFG is on
        (``guidance_scale=2``) so its code runs; 2 sampler steps.
        """
        pipe, embeds = wan_pipe(seed, flavour)
        cls._switch(pipe, gradient_checkpointing, vae_slicing)
        settings = dict(
            height=SIZE, width=SIZE, num_frames=FRAMES,
            num_inference_steps=2, guidance_scale=2.0,
        )  # fmt: skip
        return tiny_adapter(
            cls, pipe, device, prompt_embeds=embeds,
            negative_prompt_embeds=torch.zeros_like(embeds), settings=settings,
        )  # fmt: skip

    @staticmethod
    def _experts_of(pipe: Any) -> list[Any]:
        """The pipeline's transformers: one, or two experts (Wan2.2-A14B)."""
        return [
            t for t in (pipe.transformer, getattr(pipe, "transformer_2", None)) if t is not None
        ]

    @classmethod
    def _switch(cls, pipe: Any, checkpointing: bool, slicing: bool) -> None:
        """Apply the memory switches: checkpoint every expert's blocks, slice the VAE."""
        for tr in cls._experts_of(pipe):
            memory_switches(pipe, tr, gradient_checkpointing=checkpointing)
        memory_switches(pipe, None, vae_slicing=slicing)

    @classmethod
    def _check_settings(cls, settings: dict[str, Any]) -> None:
        """Raise :class:`InputError` for option names that are not settings."""
        check_options("wan-i2v", settings, _SETTINGS)

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), prompt embeds and ``stillguard.json`` generation defaults."""
        prompt = {
            "prompt_embeds": self.prompt_embeds,
            "negative_prompt_embeds": self.negative_prompt_embeds,
        }
        save_pipeline(self, path, prompt, {k: getattr(self, k) for k in _SETTINGS})
