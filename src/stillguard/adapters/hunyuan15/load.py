"""Building the ``hunyuan15-i2v`` adapter (a mixin): from weights (hub id / local folder), from a
config-only folder (:class:`~.._shared.flow_load.FlowLoading`), tiny; saving.

Prompt embeddings are never computed here: the pipeline embeds the prompt with Qwen2.5-VL-7B (its
language model only: the photo is not shown to it) and quoted text with a ByT5 glyph encoder, both
without the photo, so precomputed embeddings lose nothing the attack could reach. They come from
the caller (the keys of :data:`PROMPT_KEYS`, as the pipeline's ``encode_prompt`` returns them) or
from a folder's ``prompt_embeds.safetensors``.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.flow_load import FlowLoading
from .._shared.folders import PROMPT_FILE
from .._shared.load import save_pipeline, tiny_adapter
from .tiny import SETTINGS as TINY_SETTINGS
from .tiny import tiny_pipe

#: the pipeline's prompt arguments (positive, then negative)
POSITIVE = ("prompt_embeds", "prompt_embeds_mask", "prompt_embeds_2", "prompt_embeds_mask_2")
PROMPT_KEYS = POSITIVE + tuple("negative_" + k for k in POSITIVE)
SETTINGS = ("height", "width", "num_frames", "opt_num_frames", "num_inference_steps",
            "guidance_scale")  # fmt: skip
ABSENT = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
#: the pipeline's token counts: Qwen (``tokenizer_max_length``) and ByT5 (``tokenizer_2_max_length``)
TEXT_TOKENS, TEXT_TOKENS_2 = 1000, 256


def complete_prompt(p: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """Masks default to ones; the negative Qwen prompt to zeros (mask ones), the negative ByT5 one
    to zeros with mask zeros (what the pipeline's encoder gives a prompt without quoted text).

    Raises:
        ModelError: ``prompt_embeds`` or ``prompt_embeds_2`` missing.
    """
    pe, pe2 = p.get("prompt_embeds"), p.get("prompt_embeds_2")
    if pe is None or pe2 is None:
        raise ModelError("HunyuanVideo 1.5 needs prompt_embeds and prompt_embeds_2")

    def ones(t: Tensor) -> Tensor:
        return torch.ones(t.shape[:2], dtype=torch.long, device=t.device)

    defaults = dict(zip(PROMPT_KEYS, (
        pe, ones(pe), pe2, ones(pe2), 0 * pe, ones(pe), 0 * pe2, 0 * ones(pe2)
    ), strict=True))  # fmt: skip
    return {k: defaults[k] if p.get(k) is None else p[k] for k in PROMPT_KEYS}


class Hunyuan15Loading(FlowLoading):
    """``from_pretrained``, ``tiny``, ``from_config`` (:class:`~.._shared.flow_load.FlowLoading`),
    ``save_pretrained`` and ``describe`` of :class:`~.adapter.HunyuanVideo15I2V`."""

    PIPELINE = "HunyuanVideo15ImageToVideoPipeline"
    ABSENT = ABSENT
    complete_prompt = staticmethod(complete_prompt)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        **options: Any,
    ) -> Any:
        """Load a hub id or a ``save_pretrained`` folder (safetensors only, never remote code).

        ``options``: the prompt tensors of :data:`PROMPT_KEYS`, and settings (height, width,
        num_frames, opt_num_frames, num_inference_steps, guidance_scale) overriding the folder's
        ``stillguard.json``. ``vae_tiling`` also changes the photo's latent (see the family's
        docstring).

        Raises:
            InputError: an unknown option.
            ModelError: no weights, pickle-only weights, or no prompt embeddings.
        """
        return cls.from_options(
            model, device, dtype, options, keys=PROMPT_KEYS, settings=SETTINGS,
            required=("prompt_embeds", "prompt_embeds_2"), what="HunyuanVideo 1.5 I2V",
            missing="stillguard does not run HunyuanVideo 1.5's text encoders (Qwen2.5-VL-7B and "
            "ByT5); pass prompt_embeds, prompt_embeds_mask, prompt_embeds_2 and "
            "prompt_embeds_mask_2 as the pipeline's encode_prompt(prompt=...) returns them, or a "
            f"folder whose {PROMPT_FILE} has them",
            gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing,
            vae_tiling=vae_tiling,
        )  # fmt: skip

    @classmethod
    def from_config(cls, folder: str | Any, **options: Any) -> Any:
        """As :meth:`FlowLoading.from_config`: random weights (``random_weights`` True)."""
        adapter = super().from_config(folder, **options)
        adapter.random_weights = True
        return adapter

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> Any:
        """32×48, 9 frames (3 latent frames of 4×6 tokens), 2 blocks of 2×8 heads, 16 SigLIP
        tokens, 6 Qwen + 5 ByT5 text tokens (2 of each padding); random weights; CFG 6."""
        pipe, prompt = tiny_pipe(seed, ABSENT)
        return tiny_adapter(
            cls, pipe, device, prompt=complete_prompt(prompt), settings=dict(TINY_SETTINGS)
        )

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        """Zeros of the published shapes: Qwen ``(1, 1000, 3584)`` (mask ones; the setting
        ``text_tokens`` changes the count) and ByT5 ``(1, 256, 1472)`` (mask zeros: no quoted
        text). The transformer keeps padded tokens in its sequence, so sizes do not depend on
        the masks."""
        tr = pipe.transformer.config
        n = int(settings.get("text_tokens", TEXT_TOKENS))
        n2 = int(settings.get("text_tokens_2", TEXT_TOKENS_2))
        return {
            "prompt_embeds": torch.zeros(1, n, tr.text_embed_dim, dtype=dtype),
            "prompt_embeds_mask": torch.ones(1, n, dtype=torch.long),
            "prompt_embeds_2": torch.zeros(1, n2, tr.text_embed_2_dim, dtype=dtype),
            "prompt_embeds_mask_2": torch.zeros(1, n2, dtype=torch.long),
        }

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), the prompt tensors, and ``stillguard.json``."""
        save_pipeline(self, path, self.prompt, {k: getattr(self, k) for k in SETTINGS})

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "image_tokens": "SigLIP (differentiated)",
            "text": "precomputed Qwen2.5-VL + ByT5 embeddings (the photo never enters them)",
        }
