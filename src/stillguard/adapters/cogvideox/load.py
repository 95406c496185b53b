"""Building the ``cogvideox-i2v`` adapter: from weights, from a config-only folder, tiny; saving.

:class:`CogVideoXLoading` is a mixin of :class:`~.adapter.CogVideoXI2V`; every constructor ends
in ``cls(pipe, ...)`` with the pipeline, the prompt embeddings and the generation settings.

* :meth:`~CogVideoXLoading.from_pretrained`: a hub id (only from the local Hugging Face cache,
  ``local_files_only=True``), a ``save_pretrained`` folder or ``"toy"``; the prompt is embedded once
  with the folder's T5 and T5 is dropped;
* :meth:`~CogVideoXLoading.from_config`: every component built from a config-only folder with
  random weights (nothing allocated on ``device="meta"`` or under ``FakeTensorMode``), prompt
  embeddings zeros of the published shape ``(1, max_text_seq_length, text_embed_dim)`` (T5-XXL:
  226 tokens x 4096 for both published checkpoints);
* :meth:`~CogVideoXLoading.tiny`: the same diffusers classes from the small configs of
  :mod:`.tiny`, ``variant="1.0"`` (CogVideoX-5b-I2V's switches) or ``"1.5"`` (CogVideoX1.5-5B-I2V's).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from ...errors import InputError, ModelError
from ...registry import close_matches
from .._shared.build import config_pipeline
from .._shared.folders import PROMPT_FILE
from .._shared.load import (
    SWITCHES,
    memory_switches,
    merged_settings,
    open_pipeline,
    prompt_pair,
    resolve_dtype,
    save_pipeline,
)
from .tiny import cogvideox_pipe

logger = logging.getLogger(__name__)
T = TypeVar("T", bound="CogVideoXLoading")

#: generation settings an option or ``stillguard.json`` may set
SETTINGS = (
    "height",
    "width",
    "num_frames",
    "opt_num_frames",
    "guidance_scale",
    "num_inference_steps",
)


def _switch(pipe: Any, options: dict[str, Any]) -> None:
    memory_switches(pipe, pipe.transformer, **{k: bool(options.get(k)) for k in SWITCHES})


def _settings(folder: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    """``stillguard.json`` beside the pipeline, overridden by the options that are not ``None``."""
    return merged_settings(folder, {k: options.get(k) for k in SETTINGS})


class CogVideoXLoading:
    """Constructors and ``save_pretrained`` of the CogVideoX-I2V adapter (a mixin)."""

    @classmethod
    def from_pretrained(
        cls: type[T],
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
    ) -> T:
        """Load a hub id (from the local cache only), a ``save_pretrained`` folder, or ``"toy"``.

        Options left as ``None`` come from the folder's ``stillguard.json``, else from the model.

        Raises:
            ModelError: no weights, pickle-only weights, a hub id not downloaded yet, or no way to
                embed the prompt.
        """
        from diffusers import CogVideoXImageToVideoPipeline

        options = dict(locals())
        pipe, model_id, folder, src, device, dtype = open_pipeline(
            CogVideoXImageToVideoPipeline, model, device, dtype, "CogVideoX-I2V", text_encoder=None,
            tokenizer=None,
        )  # fmt: skip
        prompt_embeds, negative_prompt_embeds = prompt_pair(
            folder, prompt, prompt_embeds, negative_prompt_embeds,
            lambda: embed_prompt(pipe, src, prompt, device, dtype),
        )  # fmt: skip
        _switch(pipe, options)
        adapter = cls(
            pipe,
            model_id=model_id,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            settings=_settings(folder, options),
            device=device,
            dtype=dtype,
        )
        adapter.text_source = src
        return adapter

    def embed_text(self, text: str) -> dict[str, Tensor]:
        """The ``prompt_embeds`` of ``text`` from the model folder's T5 (reloaded, then dropped;
        cached per text), for a method's own caption (:mod:`stillguard.methods._caption`).

        Raises:
            ModelError: the adapter was not loaded from a folder with a text encoder.
        """
        cache = self.__dict__.setdefault("_text_cache", {})
        if text not in cache:
            src = getattr(self, "text_source", None)
            if src is None:
                raise ModelError(
                    f"cogvideox-i2v model {self.model_id!r} cannot embed a caption: it has no text "
                    "encoder (tiny and config-built models have none)"
                )
            cache[text] = embed_prompt(self.pipe, src, text, self.device, self.dtype)[0]
        return {"prompt_embeds": cache[text]}

    @classmethod
    def from_config(
        cls: type[T],
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        seed: int = 0,
        **options: Any,
    ) -> T:
        """Every component from a config-only folder, random weights from ``seed``, no T5.

        ``options``: the generation settings of :meth:`from_pretrained` (``height``, ``width``,
        ``num_frames``, ``opt_num_frames``, ``guidance_scale``, ``num_inference_steps``) and its
        memory switches. Prompt embeddings (and the negative ones) are zeros
        ``(1, max_text_seq_length, text_embed_dim)`` of the transformer's config.

        Raises:
            InputError: an unknown option.
            ModelError: the folder is not a CogVideoX-I2V pipeline folder.
        """
        from diffusers import CogVideoXImageToVideoPipeline

        unknown = sorted(set(options) - set(SETTINGS) - set(SWITCHES))
        if unknown:
            raise InputError(
                f"unknown cogvideox-i2v option(s) {unknown}: "
                f"{close_matches(unknown[0], [*SETTINGS, *SWITCHES])}"
            )
        dtype, folder = resolve_dtype(dtype), Path(folder)
        pipe = config_pipeline(
            folder, CogVideoXImageToVideoPipeline, seed=seed, device=device, dtype=dtype,
            skip=("text_encoder", "tokenizer"), needed=("transformer", "vae", "scheduler"),
            what="a CogVideoX-I2V",
        )  # fmt: skip
        _switch(pipe, options)
        cfg = pipe.transformer.config
        embeds = torch.zeros(
            1, cfg.max_text_seq_length, cfg.text_embed_dim, device=device, dtype=dtype
        )
        settings = _settings(folder, options)
        adapter = cls(
            pipe,
            model_id=str(settings.get("model") or folder),
            prompt_embeds=embeds,
            negative_prompt_embeds=torch.zeros_like(embeds),
            settings=settings,
            device=torch.device(device),
            dtype=dtype,
        )
        adapter.random_weights = True
        return adapter

    @classmethod
    def tiny(
        cls: type[T], seed: int = 0, *, device: str | torch.device = "cpu", variant: str = "1.0"
    ) -> T:
        """64x64, 9 frames (3 latent frames), 2 layers of 2x16 heads, 4 text tokens; random weights.

        Configs follow diffusers' own fast tests with the real model's switches: ``variant="1.0"``
        CogVideoX-5b-I2V's (RoPE + learned positional embeddings), ``"1.5"`` CogVideoX1.5-5B-I2V's
        (temporal patch 2, so 4 latent frames after the pipeline's padding; ``ofs`` embedding;
        inverted latent scaling); both zero-SNR v-prediction DDIM. CFG is on
        (``guidance_scale=2``) so its code runs.
        """
        if variant not in ("1.0", "1.5"):
            raise InputError(f"unknown tiny variant {variant!r}: use '1.0' or '1.5'")
        device = torch.device(device)
        pipe, prompt_embeds = cogvideox_pipe(seed, variant, device=device)
        return cls(
            pipe,
            model_id="tiny",
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=torch.zeros_like(prompt_embeds),
            settings=dict(guidance_scale=2.0, num_inference_steps=4),
            device=device,
            dtype=torch.float32,
        )

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), prompt embeds and ``stillguard.json`` generation defaults."""
        prompt = {
            "prompt_embeds": self.prompt_embeds,
            "negative_prompt_embeds": self.negative_prompt_embeds,
        }
        save_pipeline(self, path, prompt, {k: getattr(self, k) for k in SETTINGS})


def embed_prompt(
    pipe: Any, src: str, prompt: str, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed ``prompt`` and ``""`` once with the pipeline's T5, without grad; then drop T5."""
    config = pipe.load_config(src, local_files_only=True)
    if not (config.get("text_encoder") or [None])[0]:
        raise ModelError(
            f"{src} has no text encoder to embed the prompt {prompt!r}: pass prompt_embeds=... "
            f"(and negative_prompt_embeds=...), or leave prompt empty to use the folder's "
            f"{PROMPT_FILE} if it has one"
        )
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        pipe.tokenizer = AutoTokenizer.from_pretrained(
            src, subfolder="tokenizer", local_files_only=True
        )
        pipe.text_encoder = T5EncoderModel.from_pretrained(
            src, subfolder="text_encoder", dtype=dtype, use_safetensors=True, local_files_only=True
        ).to(device)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the T5 text encoder of {src}: {err}") from err
    try:
        with torch.no_grad():
            pe, ne = pipe.encode_prompt(
                prompt,
                negative_prompt="",
                do_classifier_free_guidance=True,
                max_sequence_length=pipe.transformer.config.max_text_seq_length,
                device=device,
                dtype=dtype,
            )
    finally:
        pipe.tokenizer = pipe.text_encoder = None
    logger.info("embedded the prompt with T5 and dropped the text encoder")
    return pe, ne
