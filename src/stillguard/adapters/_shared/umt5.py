"""UMT5 prompt embeddings as the Wan-derived pipelines build them (Wan 2.1/2.2, SkyReels-V2): the
prompt cleaned, tokenised to 512 tokens, encoded once without gradient, zeroed past its length;
and the 512-token padding their attention processors rely on.

Both ``WanAttnProcessor`` and ``SkyReelsV2AttnProcessor`` take everything before the last 512
tokens of the cross-attention context as image (CLIP) tokens (``encoder_hidden_states.shape[1] -
512``, hard-coded), so prompt embeddings of any other length would silently swap image and text
tokens: :func:`pad_prompt` pads them (and refuses longer ones). Nothing here runs at import time;
transformers is imported inside :func:`embed_prompts`.
"""

from __future__ import annotations

import html
import logging
import re
from pathlib import Path

import torch
from torch import Tensor

from ...errors import InputError, ModelError
from .load import prompt_pair

logger = logging.getLogger(__name__)

#: the cross-attention context's text part, hard-coded in the attention processors (and the length
#: the pipelines pad the UMT5 output to)
TEXT_TOKENS = 512


def pad_prompt(embeds: Tensor, what: str = "prompt_embeds", model: str = "Wan") -> Tensor:
    """Zero-pad ``(B, T, D)`` prompt embeddings to 512 tokens, as the pipelines' encoder does.

    Raises:
        InputError: not 3-D, or more than 512 tokens (``model`` would then read text tokens as
            image tokens).
    """
    if embeds.ndim != 3:
        raise InputError(f"{what} must be (B, tokens, dim), got {tuple(embeds.shape)}")
    n = embeds.shape[1]
    if n > TEXT_TOKENS:
        raise InputError(
            f"{what} has {n} tokens; {model} expects exactly {TEXT_TOKENS} (it splits image from "
            "text tokens by that count): truncate to 512 as the UMT5 tokenizer does"
        )
    if n == TEXT_TOKENS:
        return embeds
    return torch.cat(
        [embeds, embeds.new_zeros(embeds.shape[0], TEXT_TOKENS - n, embeds.shape[2])], 1
    )


def clean_prompt(text: str) -> str:
    """The pipelines' ``prompt_clean`` (ftfy.fix_text + html unescape + whitespace); ftfy is used
    only when installed, since stillguard does not require it (ASCII prompts are unchanged)."""
    try:
        import ftfy

        text = ftfy.fix_text(text)
    except ImportError:
        pass
    return re.sub(r"\s+", " ", html.unescape(html.unescape(text)).strip()).strip()


def embed_prompts(
    src: str, prompts: list[str], device: torch.device, dtype: torch.dtype, local_only: bool
) -> Tensor:
    """UMT5 embeddings ``(len(prompts), 512, D)`` exactly as ``_get_t5_prompt_embeds`` builds them
    (tokens past each prompt's length zeroed), without grad; the encoder is dropped afterwards.

    Raises:
        ModelError: the folder has no tokenizer/text encoder.
    """
    from transformers import AutoTokenizer, UMT5EncoderModel

    try:
        tok = AutoTokenizer.from_pretrained(src, subfolder="tokenizer", local_files_only=local_only)
        enc = UMT5EncoderModel.from_pretrained(
            src, subfolder="text_encoder", dtype=dtype, use_safetensors=True,
            local_files_only=local_only,
        ).to(device)  # fmt: skip
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot load the UMT5 text encoder of {src} to embed the prompt: {err}; pass "
            "prompt_embeds=... (B, 512, 4096) instead, or a folder that holds "
            "prompt_embeds.safetensors"
        ) from err
    ids = tok(
        [clean_prompt(p) for p in prompts], padding="max_length", max_length=TEXT_TOKENS,
        truncation=True, add_special_tokens=True, return_attention_mask=True, return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        out = enc(ids.input_ids.to(device), ids.attention_mask.to(device)).last_hidden_state
    keep = ids.attention_mask.to(device).gt(0).unsqueeze(-1)
    logger.info("embedded %d prompt(s) with UMT5 and dropped the text encoder", len(prompts))
    return (out * keep).to(dtype)


def umt5_prompt_pair(
    folder: Path | None,
    src: str,
    prompt: str,
    negative_prompt: str,
    prompt_embeds: Tensor | None,
    negative_prompt_embeds: Tensor | None,
    device: torch.device,
    dtype: torch.dtype,
) -> tuple[Tensor, Tensor | None]:
    """``(prompt_embeds, negative_prompt_embeds)`` of a Wan-derived pipeline: the given ones, else
    the folder's saved ones (no prompt text given), else :func:`embed_prompts` of ``prompt`` and
    ``negative_prompt`` with the folder's UMT5 (:func:`.load.prompt_pair` decides)."""

    def embed() -> tuple[Tensor, Tensor]:
        both = embed_prompts(src, [prompt, negative_prompt], device, dtype, local_only=True)
        return both[:1], both[1:]

    return prompt_pair(folder, prompt, prompt_embeds, negative_prompt_embeds, embed)
