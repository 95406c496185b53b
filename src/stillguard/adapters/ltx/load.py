"""Building the ``ltx-i2v`` adapter (a mixin): from weights (hub id / local folder), from a
config-only folder (:class:`~.._shared.flow_load.FlowLoading`), tiny; saving.

The prompt is embedded once with the pipeline's T5 (no gradient) when a folder has a text encoder;
otherwise prompt embeddings come from the folder's ``prompt_embeds.safetensors`` or from the caller
(``prompt_embeds`` + ``prompt_attention_mask``; the pipeline requires the mask). Negative
embeddings default to zeros with an all-ones mask when none are known.
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.flow_load import FlowLoading
from .._shared.folders import PROMPT_FILE
from .._shared.load import Opened, save_pipeline, tiny_adapter
from .tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, tiny_ltx_pipe

logger = logging.getLogger(__name__)

PROMPT_KEYS = (
    "prompt_embeds",
    "prompt_attention_mask",
    "negative_prompt_embeds",
    "negative_prompt_attention_mask",
)
#: settings ``from_pretrained`` accepts as keywords (all also read from ``stillguard.json``)
SETTINGS = ("height", "width", "num_frames", "opt_num_frames", "frame_rate", "guidance_scale",
            "num_inference_steps", "decode_timestep", "decode_noise_scale", "condition_sample",
            "condition_noise")  # fmt: skip
#: the pipeline's default ``max_sequence_length`` (T5 tokens) and T5-XXL's width
TEXT_TOKENS, TEXT_DIM = 128, 4096


def complete_prompt(prompt: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """Fill a missing mask with ones and a missing negative prompt with zeros (mask ones)."""
    pe = prompt["prompt_embeds"]
    if pe is None:
        raise ModelError("no prompt embeddings")
    pe = pe if pe.ndim == 3 else pe.unsqueeze(0)
    ones = torch.ones(pe.shape[:2], dtype=torch.long, device=pe.device)
    pm = prompt.get("prompt_attention_mask")
    ne = prompt.get("negative_prompt_embeds")
    nm = prompt.get("negative_prompt_attention_mask")
    return {
        "prompt_embeds": pe,
        "prompt_attention_mask": ones if pm is None else pm,
        "negative_prompt_embeds": torch.zeros_like(pe) if ne is None else ne,
        "negative_prompt_attention_mask": ones if nm is None else nm,
    }


class LTXLoading(FlowLoading):
    """``from_pretrained``, ``tiny``, ``from_config`` (:class:`~.._shared.flow_load.FlowLoading`)
    and ``save_pretrained`` of :class:`~.adapter.LTXI2V`."""

    PIPELINE = "LTXImageToVideoPipeline"
    ABSENT = ("text_encoder", "tokenizer")
    complete_prompt = staticmethod(complete_prompt)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str = "",
        prompt_embeds: Tensor | None = None,
        prompt_attention_mask: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        negative_prompt_attention_mask: Tensor | None = None,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        **settings: Any,
    ) -> Any:
        """Load a hub id or a ``save_pretrained`` folder (safetensors only, never remote code).

        ``settings`` (height, width, num_frames, opt_num_frames, frame_rate, guidance_scale,
        num_inference_steps, decode_timestep, decode_noise_scale, condition_sample,
        condition_noise) override the folder's ``stillguard.json``, which overrides the pipeline's
        defaults.

        Raises:
            ModelError: no weights, pickle-only weights, or no way to get prompt embeddings.
        """
        options = dict(
            settings,
            prompt_embeds=prompt_embeds,
            prompt_attention_mask=prompt_attention_mask,
            negative_prompt_embeds=negative_prompt_embeds,
            negative_prompt_attention_mask=negative_prompt_attention_mask,
        )
        return cls.from_options(
            model, device, dtype, options, keys=PROMPT_KEYS, settings=SETTINGS, what="LTX-Video",
            prompt=prompt, embed=lambda opened: _embed_prompt(opened, prompt),
            gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing,
            vae_tiling=vae_tiling,
        )  # fmt: skip

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> Any:
        """32×64, 9 frames (3 latent frames of 8×16 tokens), 2 blocks of 4×8 heads, 6 text tokens
        (2 of them padding); random weights. CFG on (``guidance_scale=3``, the real default)."""
        pipe, embeds, mask = tiny_ltx_pipe(seed)
        settings = dict(
            height=TINY_HEIGHT,
            width=TINY_WIDTH,
            num_frames=TINY_FRAMES,
            guidance_scale=3.0,
            num_inference_steps=4,
        )
        prompt = complete_prompt({"prompt_embeds": embeds, "prompt_attention_mask": mask})
        return tiny_adapter(cls, pipe, device, prompt=prompt, settings=settings)

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        """Zeros of the published shape ``(1, 128, 4096)`` (T5-XXL, 128 tokens, or the setting
        ``text_tokens``)."""
        tokens = int(settings.get("text_tokens", TEXT_TOKENS))
        dim = pipe.transformer.config.caption_channels
        return {"prompt_embeds": torch.zeros(1, tokens, dim, dtype=dtype)}

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), prompt embeds + masks, and ``stillguard.json``."""
        save_pipeline(self, path, self.prompt, self.settings())

    def settings(self) -> dict[str, Any]:
        keys = (
            "height",
            "width",
            "num_frames",
            "opt_num_frames",
            "frame_rate",
            "guidance_scale",
            "num_inference_steps",
            "decode_timestep",
            "decode_noise_scale",
            "condition_sample",
            "condition_noise",
        )
        return {"adapter": self.registry_name, **{k: getattr(self, k) for k in keys}}


def _embed_prompt(opened: Opened, prompt: str) -> dict[str, Tensor]:
    """Embed ``prompt`` and ``""`` once with the folder's T5 (no gradient), then drop T5."""
    pipe, src, device, dtype = opened.pipe, opened.src, opened.device, opened.dtype
    config = pipe.load_config(src)
    if not (config.get("text_encoder") or [None])[0]:
        raise ModelError(
            f"{src} has no text encoder to embed the prompt {prompt!r}: pass prompt_embeds=... and "
            f"prompt_attention_mask=..., or use a folder whose {PROMPT_FILE} holds them"
        )
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        pipe.tokenizer = AutoTokenizer.from_pretrained(src, subfolder="tokenizer")
        pipe.text_encoder = T5EncoderModel.from_pretrained(
            src, subfolder="text_encoder", dtype=dtype, use_safetensors=True
        ).to(device)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the T5 text encoder of {src}: {err}") from err
    try:
        with torch.no_grad():
            pe, pm, ne, nm = pipe.encode_prompt(
                prompt,
                negative_prompt="",
                do_classifier_free_guidance=True,
                max_sequence_length=TEXT_TOKENS,
                device=device,
            )
    finally:
        pipe.tokenizer = pipe.text_encoder = None
    logger.info("embedded the prompt with T5 and dropped the text encoder")
    return dict(zip(PROMPT_KEYS, (pe, pm, ne, nm), strict=True))
