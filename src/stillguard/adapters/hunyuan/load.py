"""Building the ``hunyuan-i2v`` adapter (a mixin): from weights (hub id / local folder), from a
config-only folder (:class:`~.._shared.flow_load.FlowLoading`), tiny; saving.

Prompt embeddings are never computed here: HunyuanVideo-I2V embeds the prompt *together with the
photo* in LLaVA-Llama-3-8B (plus a CLIP-L pooled text vector), so the embeddings depend on the
image. They come from the caller (``prompt_embeds``, ``prompt_attention_mask``,
``pooled_prompt_embeds``, computed with the pipeline's ``encode_prompt`` for the photo) or from a
folder's ``prompt_embeds.safetensors``; see the family's docstring
(:mod:`stillguard.adapters.hunyuan`) for what that means for the attack.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.flow_load import FlowLoading
from .._shared.folders import PROMPT_FILE
from .._shared.load import save_pipeline, tiny_adapter
from .tiny import TINY_SETTINGS, hunyuan_pipe

PROMPT_KEYS = ("prompt_embeds", "prompt_attention_mask", "pooled_prompt_embeds",
               "negative_prompt_embeds", "negative_prompt_attention_mask",
               "negative_pooled_prompt_embeds")  # fmt: skip
SETTINGS = ("height", "width", "num_frames", "opt_num_frames", "num_inference_steps",
            "guidance_scale", "true_cfg_scale", "text_image_path")  # fmt: skip
ABSENT = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "image_processor")

#: LLaVA tokens of the default template: 576/2 image tokens (interleave 2) + 256 − 4 text tokens
TEXT_TOKENS = {"latent_concat": 288 + 252, "token_replace": 144 + 252}


def complete_prompt(p: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """Masks default to ones, negatives to zeros (mask ones); ``pooled_prompt_embeds`` is required."""
    pe, pooled = p.get("prompt_embeds"), p.get("pooled_prompt_embeds")
    if pe is None or pooled is None:
        raise ModelError("HunyuanVideo-I2V needs prompt_embeds and pooled_prompt_embeds")
    ones = torch.ones(pe.shape[:2], dtype=torch.long, device=pe.device)
    defaults = dict(zip(PROMPT_KEYS, (pe, ones, pooled, 0 * pe, ones, 0 * pooled), strict=True))
    return {k: defaults[k] if p.get(k) is None else p[k] for k in PROMPT_KEYS}


class HunyuanLoading(FlowLoading):
    """``from_pretrained``, ``tiny``, ``from_config`` (:class:`~.._shared.flow_load.FlowLoading`),
    ``save_pretrained`` and ``describe`` of :class:`~.adapter.HunyuanI2V`."""

    PIPELINE = "HunyuanVideoImageToVideoPipeline"
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
        num_frames, opt_num_frames, num_inference_steps, guidance_scale, true_cfg_scale,
        text_image_path) overriding the folder's ``stillguard.json``.

        Raises:
            ModelError: no weights, pickle-only weights, or no prompt embeddings.
        """
        return cls.from_options(
            model, device, dtype, options, keys=PROMPT_KEYS, settings=SETTINGS,
            required=("prompt_embeds", "pooled_prompt_embeds"), what="HunyuanVideo-I2V",
            missing="HunyuanVideo-I2V embeds the prompt together with the photo in "
            "LLaVA-Llama-3-8B, which stillguard does not run; pass prompt_embeds, "
            "prompt_attention_mask and pooled_prompt_embeds computed by the pipeline's "
            f"encode_prompt(image=photo, prompt=...), or a folder whose {PROMPT_FILE} has them",
            gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing,
            vae_tiling=vae_tiling,
        )  # fmt: skip

    @classmethod
    def tiny(
        cls,
        seed: int = 0,
        *,
        device: str | torch.device = "cpu",
        image_condition_type: str = "latent_concat",
    ) -> Any:
        """32×48, 9 pipeline frames (5 returned, 3 latent frames of 4×6 tokens), 1 dual + 2 single
        blocks of 2×10 heads, 6 text tokens (2 of them padding); random weights.

        ``image_condition_type="token_replace"`` builds the 16-channel variant instead."""
        pipe, config = hunyuan_pipe(seed, image_condition_type, ABSENT)
        g = torch.Generator().manual_seed(seed)
        pe = torch.randn(1, 6, 16, generator=g)
        mask = torch.ones(1, 6, dtype=torch.long)
        mask[:, -2:] = 0
        prompt = complete_prompt(
            {
                "prompt_embeds": pe,
                "prompt_attention_mask": mask,
                "pooled_prompt_embeds": torch.randn(1, 8, generator=g),
            }
        )
        settings = dict(TINY_SETTINGS, guidance_scale=6.0 if config["guidance_embeds"] else 1.0)
        return tiny_adapter(cls, pipe, device, prompt=prompt, settings=settings)

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        """Zeros of the published shape: LLaVA tokens of the default template (or the setting
        ``text_tokens``) × the text width (4096), and the pooled CLIP-L vector (768)."""
        tr = pipe.transformer.config
        tokens = int(settings.get("text_tokens", TEXT_TOKENS[tr.image_condition_type]))
        return {
            "prompt_embeds": torch.zeros(1, tokens, tr.text_embed_dim, dtype=dtype),
            "pooled_prompt_embeds": torch.zeros(1, tr.pooled_projection_dim, dtype=dtype),
        }

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), prompt embeds + masks + pooled, and ``stillguard.json``."""
        keys = (
            "height",
            "width",
            "opt_num_frames",
            "num_inference_steps",
            "guidance_scale",
            "true_cfg_scale",
            "text_image_path",
        )
        settings = {k: getattr(self, k) for k in keys}
        save_pipeline(self, path, self.prompt, {"num_frames": self.pipe_frames, **settings})

    def describe(self) -> dict[str, Any]:
        return {
            **super().describe(),
            "image_condition": self.kind,
            "text_image_path": f"{self.text_image_path} (LLaVA image tokens not differentiated)",
        }
