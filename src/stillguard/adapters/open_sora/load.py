"""Building the ``open-sora-1.2`` adapter: from weights, from a config-only folder, tiny; saving.

:class:`OpenSoraLoading` is a mixin of :class:`~.adapter.OpenSora12`; every constructor ends in
``cls(pipe, ...)`` with the pipeline (:class:`.pipeline.OpenSoraPipeline`), the T5
prompt features (or ``None``: zeros of the published shape) and the generation settings.

* :meth:`~OpenSoraLoading.from_pretrained`: a local folder (layout in
  :mod:`.pipeline`) or the default hub id, read from the local Hugging Face cache
  only (safetensors, never downloaded);
* :meth:`~OpenSoraLoading.from_config`: random weights from a config-only folder (nothing
  allocated on ``device="meta"``), zero prompt features ``(1, 300, 4096)``;
* :meth:`~OpenSoraLoading.official_model`: STDiT3-XL/2 or the whole VAE of the shipped real
  configuration, official parameter names;
* :meth:`~OpenSoraLoading.tiny`: toy widths, random weights, offline.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from ...errors import InputError, ModelError
from ...registry import close_matches
from .._shared.folders import (
    PROMPT_FILE,
    read_settings,
    resolve_model,
    save_tensors,
    write_settings,
)
from .._shared.load import merged_settings, resolve_dtype, saved_prompt, tiny_adapter
from . import pipeline as P
from .tiny import opensora_pipe

T = TypeVar("T", bound="OpenSoraLoading")

#: generation settings written to ``stillguard.json`` by :meth:`OpenSoraLoading.save_pretrained`
SETTINGS = (
    "height",
    "width",
    "num_frames",
    "opt_num_frames",
    "fps",
    "guidance_scale",
    "num_inference_steps",
)


class OpenSoraLoading:
    """Constructors and ``save_pretrained`` of the Open-Sora 1.2 adapter (a mixin)."""

    @classmethod
    def from_pretrained(
        cls: type[T],
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
    ) -> T:
        """Load a local folder (layout: :mod:`.pipeline`).

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
        dtype, device = resolve_dtype(dtype), torch.device(device)
        model_id, folder = resolve_model(model)
        if (folder is None and model_id != cls.default_model) or model_id == "toy":
            raise ModelError(
                f"open-sora-1.2 loads {cls.default_model} (from the local Hugging Face cache) or "
                f"a local folder, got {model!r}: download hpcai-tech/OpenSora-STDiT-v3 into "
                "<folder>/transformer and hpcai-tech/OpenSora-VAE-v1.2 into <folder>/vae, add "
                "model_index.json (see stillguard.adapters.open_sora.pipeline)"
            )
        if folder is None:
            pipe = P.load_from_hub_cache(device, dtype)
        else:
            pipe = P.load(folder, device, dtype)
        if prompt_embeds is None and prompt is not None:
            length = pipe.transformer.config.model_max_length
            where = folder or Path(model_id)  # a hub id has no T5 here: embed_prompt says so
            prompt_embeds, prompt_mask = P.embed_prompt(where, prompt, length, device, dtype)
        elif prompt_embeds is None and (saved := saved_prompt(folder)) is not None:
            prompt_embeds, prompt_mask = saved["prompt_embeds"], saved.get("prompt_mask")
        pipe.transformer.gradient_checkpointing = gradient_checkpointing
        given = dict(
            height=height, width=width, num_frames=num_frames, opt_num_frames=opt_num_frames,
            fps=fps, guidance_scale=guidance_scale, num_inference_steps=num_inference_steps,
        )  # fmt: skip
        stored = merged_settings(folder, given)
        return cls(pipe, model_id=model_id, prompt_embeds=prompt_embeds, prompt_mask=prompt_mask,
                   settings=stored, device=device, dtype=dtype)  # fmt: skip

    @classmethod
    def from_config(
        cls: type[T],
        folder: str | Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> T:
        """Random weights from a config-only folder (e.g. ``configs/open-sora-1.2``); zero prompt
        embeddings of the published shape ``(1, 300, 4096)``."""
        folder = Path(folder)
        pipe = P.build(*P.read_configs(folder), device=device)
        pipe.to(device, resolve_dtype(dtype))
        settings = {**read_settings(folder), **options}
        return cls(pipe, model_id=str(folder), prompt_embeds=None, prompt_mask=None,
                   settings=settings, device=torch.device(device), dtype=resolve_dtype(dtype))  # fmt: skip

    @classmethod
    def official_model(cls, part: str, *, device: str | torch.device = "meta") -> torch.nn.Module:
        """``"stdit3"``: STDiT3-XL/2 (``hpcai-tech/OpenSora-STDiT-v3``); ``"vae"``: the whole
        ``VideoAutoencoderPipeline`` (``hpcai-tech/OpenSora-VAE-v1.2``), built from the shipped
        real configuration; ``state_dict()`` keys and shapes are the official ones."""
        from ..official import real_config

        parts = {"stdit3": 0, "vae": 1}
        if part not in parts:
            raise InputError(
                f"unknown open-sora-1.2 part {part!r}: {close_matches(part, list(parts))}"
            )
        stdit, vae, sched = P.read_configs(real_config(cls.registry_name))
        pipe = P.build(stdit, vae, sched, device=device)
        return (pipe.transformer, pipe.vae)[parts[part]]

    @classmethod
    def tiny(cls: type[T], seed: int = 0, *, device: str | torch.device = "cpu") -> T:
        """64×64 px, 17 frames (5 latent frames of 4×4 tokens), 2+2 blocks of width 32, 4 text
        tokens of width 16 (no T5); 3 steps, the real CFG 7, fps 24 and timestep transform."""
        pipe, embeds = opensora_pipe(seed)
        settings = dict(height=64, width=64, num_frames=17, num_inference_steps=3)
        return tiny_adapter(
            cls, pipe, device, prompt_embeds=embeds, prompt_mask=None, settings=settings
        )

    def save_pretrained(self, path: str) -> None:
        """Folder layout of :mod:`.pipeline`, prompt embeds, ``stillguard.json``."""
        folder = Path(path)
        P.save(self.pipe, folder)
        save_tensors(folder / PROMPT_FILE, {
            "prompt_embeds": self.prompt_embeds, "prompt_mask": self.prompt_mask.to(torch.uint8),
        })  # fmt: skip
        write_settings(
            folder, {"adapter": self.registry_name, **{k: getattr(self, k) for k in SETTINGS}}
        )
