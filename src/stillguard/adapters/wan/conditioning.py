"""What Wan is conditioned on besides the noisy latent, computed outside the transformer: UMT5
prompt embeddings exactly as the pipeline builds them (padded to 512 tokens, ftfy optional), and
the CLIP image preprocessing redone in torch (so the gradient reaches the photo).

Nothing here runs at import time; transformers is imported inside the functions.
"""

from __future__ import annotations

import html
import logging
import re
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InputError, ModelError

logger = logging.getLogger(__name__)

#: Wan's attention processor takes everything before the last 512 tokens of the cross-attention
#: context as image tokens (``transformer_wan.py``: ``encoder_hidden_states.shape[1] - 512``)
TEXT_TOKENS = 512


def pad_prompt(embeds: Tensor, what: str = "prompt_embeds") -> Tensor:
    """Zero-pad ``(B, T, D)`` prompt embeddings to 512 tokens, as the pipeline's encoder does.

    Raises:
        InputError: more than 512 tokens (Wan would then read text tokens as image tokens).
    """
    if embeds.ndim != 3:
        raise InputError(f"{what} must be (B, tokens, dim), got {tuple(embeds.shape)}")
    n = embeds.shape[1]
    if n > TEXT_TOKENS:
        raise InputError(
            f"{what} has {n} tokens; Wan expects exactly {TEXT_TOKENS} (it splits image from text "
            "tokens by that count): truncate to 512 as the UMT5 tokenizer does"
        )
    if n == TEXT_TOKENS:
        return embeds
    return torch.cat(
        [embeds, embeds.new_zeros(embeds.shape[0], TEXT_TOKENS - n, embeds.shape[2])], 1
    )


def _clean(text: str) -> str:
    """The pipeline's ``prompt_clean`` (ftfy.fix_text + html unescape + whitespace); ftfy is used
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
        [_clean(p) for p in prompts], padding="max_length", max_length=TEXT_TOKENS,
        truncation=True, add_special_tokens=True, return_attention_mask=True, return_tensors="pt",
    )  # fmt: skip
    with torch.no_grad():
        out = enc(ids.input_ids.to(device), ids.attention_mask.to(device)).last_hidden_state
    keep = ids.attention_mask.to(device).gt(0).unsqueeze(-1)
    logger.info("embedded %d prompt(s) with UMT5 and dropped the text encoder", len(prompts))
    return (out * keep).to(dtype)


def clip_pixels(x: Tensor, processor: Any) -> Tensor:
    """What the CLIP image encoder sees, in torch: the processor's shortest-edge bicubic resize
    (antialiased, PIL's filter), centre crop, and mean/std normalisation.

    The pipeline runs ``CLIPImageProcessor`` on the 8-bit PIL photo; the only difference left is
    PIL's rounding of the resized image to 8 bit (at most half a grey level).

    Shape:
        ``(B,3,H,W)`` in [0,1] -> ``(B,3,crop_h,crop_w)`` normalised.
    """
    size, crop = _size(processor.size), _size(processor.crop_size)
    crop_h, crop_w = crop["height"], crop["width"]
    h, w = x.shape[-2:]
    if size.get("shortest_edge"):
        short = size["shortest_edge"]
        # transformers' get_resize_output_image_size: the long side is int(short * long / short)
        nh, nw = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    else:
        nh, nw = size["height"], size["width"]
    img = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - crop_h) // 2, (nw - crop_w) // 2
    img = img.clamp(0, 1)[..., top : top + crop_h, left : left + crop_w]
    mean = torch.tensor(processor.image_mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (img - mean) / std


def _size(value: Any) -> dict[str, Any]:
    """A processor size (int, dict or transformers' ``SizeDict``) as a plain dict."""
    if isinstance(value, int):
        return {"height": value, "width": value}
    if isinstance(value, dict):
        return dict(value)
    keys = ("height", "width", "shortest_edge")
    return {k: getattr(value, k) for k in keys if getattr(value, k, None) is not None}


def swap_fc(z: Tensor) -> Tensor:
    """``(B, F, C, h, w)`` <-> ``(B, C, F, h, w)``: stillguard's latent layout and diffusers'."""
    return z.permute(0, 2, 1, 3, 4)
