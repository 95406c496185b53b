"""The prompt of ``ltx2-i2v``: Gemma-3's stacked hidden states, and what the connectors make of them.

LTX-2's text path is text only, out of the photo's reach: Gemma-3 12B (``text_encoder``) gives
the hidden states of all its layers, stacked ``(B, L, caption · (layers + 1))`` with a mask (left
padding, 1024 tokens), and the text connectors (``LTX2TextConnectors``, 1.4 B parameters) turn
them into a video context and an audio context ``(B, L, caption)`` plus a mask. stillguard embeds
the prompt once (no gradient) and drops Gemma; the connectors' output is computed once per adapter
and reused by every denoiser call (the pipeline recomputes it per call: same values). The raw
stacked states are kept because :meth:`generate` hands them to the pipeline's own ``__call__``.

Where the prompt tensors come from (``from_pretrained``): the caller (``prompt_embeds`` and
``prompt_attention_mask``, both required by the pipeline), else the folder's
``prompt_embeds.safetensors``, else the folder's Gemma (``text_encoder`` + ``tokenizer``).
Negatives default to zeros with an all-ones mask.
"""

from __future__ import annotations

import logging
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.build import fake_or_meta
from .._shared.folders import PROMPT_FILE
from .._shared.load import Opened

logger = logging.getLogger(__name__)

PROMPT_KEYS = (
    "prompt_embeds",
    "prompt_attention_mask",
    "negative_prompt_embeds",
    "negative_prompt_attention_mask",
)
#: the padding side of Gemma's tokenizer (the pipeline's default without a tokenizer)
PADDING_SIDE = "left"


class TextContext(NamedTuple):
    """The connectors' output for one prompt: video and audio contexts ``(1, L, D)``, mask
    ``(1, L)``."""

    video: Tensor
    audio: Tensor
    mask: Tensor


def complete_prompt(prompt: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """Fill a missing mask with ones and a missing negative prompt with zeros (mask ones)."""
    pe = prompt.get("prompt_embeds")
    if pe is None:
        raise ModelError("no prompt embeddings")
    pe = pe if pe.ndim == 3 else pe.unsqueeze(0)
    ones = torch.ones(pe.shape[:2], dtype=torch.long, device=pe.device)
    pm, ne, nm = (prompt.get(k) for k in PROMPT_KEYS[1:])
    return {
        "prompt_embeds": pe,
        "prompt_attention_mask": ones if pm is None else pm,
        "negative_prompt_embeds": torch.zeros_like(pe) if ne is None else ne,
        "negative_prompt_attention_mask": ones if nm is None else nm,
    }


def zero_prompt(pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict[str, Tensor]:
    """Zeros of the published shape: ``(1, 1024, 3840·49)`` for LTX-2 (Gemma-3 12B's 48 layers
    plus its embeddings, 1024 tokens, or the setting ``text_tokens``)."""
    cfg = pipe.connectors.config
    tokens = int(settings.get("text_tokens", 1024))
    width = cfg.caption_channels * cfg.text_proj_in_factor
    return {"prompt_embeds": torch.zeros(1, tokens, width, dtype=dtype)}


@torch.no_grad()
def text_context(pipe: Any, embeds: Tensor, mask: Tensor) -> TextContext:
    """The connectors on one prompt, as the pipeline runs them. On the meta device or under fake
    tensors (a plan: no values) zeros of the connectors' output shapes stand in."""
    cfg = pipe.connectors.config
    if fake_or_meta(embeds.device):
        per = cfg.get("per_modality_projections", False)
        dims = (cfg.video_hidden_dim, cfg.audio_hidden_dim) if per else (cfg.caption_channels,) * 2
        b, n = embeds.shape[:2]
        video, audio = (embeds.new_zeros(b, n, d) for d in dims)
        return TextContext(video, audio, mask.new_ones(b, n))
    return TextContext(*pipe.connectors(embeds, mask, padding_side=PADDING_SIDE))


def embed_prompt(opened: Opened, prompt: str, tokens: int) -> dict[str, Tensor]:
    """Embed ``prompt`` and ``""`` once with the folder's Gemma (no gradient), then drop Gemma.

    Raises:
        ModelError: the folder has no text encoder, or it cannot be loaded.
    """
    import transformers

    pipe, src, device, dtype = opened.pipe, opened.src, opened.device, opened.dtype
    config = pipe.load_config(src)
    entry = config.get("text_encoder") or [None, None]
    if not entry[0]:
        raise ModelError(
            f"{src} has no text encoder to embed the prompt {prompt!r}: pass prompt_embeds=... and "
            f"prompt_attention_mask=... (Gemma's stacked hidden states), or use a folder whose "
            f"{PROMPT_FILE} holds them"
        )
    try:
        encoder_cls = getattr(transformers, entry[1])
        pipe.tokenizer = transformers.AutoTokenizer.from_pretrained(
            src, subfolder="tokenizer", local_files_only=True
        )
        pipe.text_encoder = encoder_cls.from_pretrained(
            src, subfolder="text_encoder", dtype=dtype, use_safetensors=True, local_files_only=True
        ).to(device)
    except (OSError, ValueError, AttributeError) as err:
        raise ModelError(f"cannot load the text encoder of {src}: {err}") from err
    try:
        with torch.no_grad():
            pe, pm, ne, nm = pipe.encode_prompt(
                prompt, negative_prompt="", do_classifier_free_guidance=True,
                max_sequence_length=tokens, device=device,
            )  # fmt: skip
    finally:
        pipe.tokenizer = pipe.text_encoder = None
    logger.info("embedded the prompt with %s and dropped the text encoder", entry[1])
    return dict(zip(PROMPT_KEYS, (pe, pm, ne, nm), strict=True))
