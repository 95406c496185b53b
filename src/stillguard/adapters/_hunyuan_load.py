"""The pipeline-facing side of ``hunyuan-i2v``: construction (hub id / local folder, tiny random
model, config folder), ``save_pretrained`` and ``generate`` (the pipeline's own ``__call__``).

Prompt embeddings are never computed here: HunyuanVideo-I2V embeds the prompt *together with the
photo* in LLaVA-Llama-3-8B (plus a CLIP-L pooled text vector), so the embeddings depend on the
image. They come from the caller (``prompt_embeds``, ``prompt_attention_mask``,
``pooled_prompt_embeds``, computed with the pipeline's ``encode_prompt`` for the photo) or from a
folder's ``prompt_embeds.safetensors``; see :mod:`.hunyuan_i2v` for what that means for the attack.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..errors import InputError, ModelError
from ._shared.flow_load import FlowLoading
from ._shared.folders import PROMPT_FILE
from ._shared.generate import run_pipeline, working_image
from ._shared.load import open_pipeline, save_pipeline, saved_prompt, tiny_adapter

PROMPT_KEYS = ("prompt_embeds", "prompt_attention_mask", "pooled_prompt_embeds",
               "negative_prompt_embeds", "negative_prompt_attention_mask",
               "negative_pooled_prompt_embeds")  # fmt: skip
SETTINGS = ("height", "width", "num_frames", "opt_num_frames", "num_inference_steps",
            "guidance_scale", "true_cfg_scale", "text_image_path")  # fmt: skip
ABSENT = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2", "image_processor")

# After diffusers' fast test (tests/pipelines/hunyuan_video/test_hunyuan_image2video.py): latent
# concat (2·4 + 1 input channels), no guidance embedding, patch 1; 1 dual + 2 single-stream blocks.
TINY_TRANSFORMER = dict(
    in_channels=2 * 4 + 1, out_channels=4, num_attention_heads=2, attention_head_dim=10,
    num_layers=1, num_single_layers=2, num_refiner_layers=1, patch_size=1, patch_size_t=1,
    guidance_embeds=False, text_embed_dim=16, pooled_projection_dim=8, rope_axes_dim=(2, 4, 4),
    image_condition_type="latent_concat",
)  # fmt: skip
TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4,
    down_block_types=("HunyuanVideoDownBlock3D",) * 4, up_block_types=("HunyuanVideoUpBlock3D",) * 4,
    block_out_channels=(8, 8, 8, 8), layers_per_block=1, act_fn="silu", norm_num_groups=4,
    scaling_factor=0.476986, spatial_compression_ratio=8, temporal_compression_ratio=4,
    mid_block_add_attention=True,
)  # fmt: skip
#: 32×48 px, 9 frames into the pipeline (it returns 5: latent concat drops 4), 6 text tokens
TINY_SETTINGS = dict(height=32, width=48, num_frames=9, num_inference_steps=4, guidance_scale=1.0)
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
    """``from_pretrained``, ``tiny``, ``from_config`` (:class:`~._flow_load.FlowLoading`),
    ``generate``, ``save_pretrained`` and ``describe`` of :class:`~.hunyuan_i2v.HunyuanI2V`."""

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
        from diffusers import HunyuanVideoImageToVideoPipeline

        prompt = {k: options.pop(k, None) for k in PROMPT_KEYS}
        unknown = sorted(set(options) - set(SETTINGS))
        if unknown:
            raise InputError(f"unknown hunyuan-i2v options {unknown}: choose from {SETTINGS}")
        opened = open_pipeline(
            HunyuanVideoImageToVideoPipeline, model, device, dtype, "HunyuanVideo-I2V",
            **dict.fromkeys(ABSENT),
        )  # fmt: skip
        saved = saved_prompt(opened.folder) if prompt["prompt_embeds"] is None else None
        if saved is not None:
            prompt.update(saved)
        if prompt["prompt_embeds"] is None or prompt["pooled_prompt_embeds"] is None:
            raise ModelError(
                f"{model!r}: HunyuanVideo-I2V embeds the prompt together with the photo in "
                "LLaVA-Llama-3-8B, which stillguard does not run; pass prompt_embeds, "
                "prompt_attention_mask and pooled_prompt_embeds computed by the pipeline's "
                f"encode_prompt(image=photo, prompt=...), or a folder whose {PROMPT_FILE} has them"
            )
        return cls.adapter_from_opened(
            opened, prompt, options, gradient_checkpointing=gradient_checkpointing,
            vae_slicing=vae_slicing, vae_tiling=vae_tiling,
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
        from diffusers import (
            AutoencoderKLHunyuanVideo,
            FlowMatchEulerDiscreteScheduler,
            HunyuanVideoImageToVideoPipeline,
            HunyuanVideoTransformer3DModel,
        )

        config = dict(TINY_TRANSFORMER, image_condition_type=image_condition_type)
        if image_condition_type == "token_replace":
            config.update(in_channels=4, guidance_embeds=True)
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            transformer = HunyuanVideoTransformer3DModel(**config)
            vae = AutoencoderKLHunyuanVideo(**TINY_VAE)
        pipe = HunyuanVideoImageToVideoPipeline(
            transformer=transformer,
            vae=vae,
            scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0),
            **dict.fromkeys(ABSENT),
        )
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

    # ------------------------------------------------------------------ generation, saving
    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own sampling with the precomputed prompt. ``(B,3,H,W)`` -> ``(B,F,3,H,W)``
        with ``F = num_frames`` (the pipeline is asked for ``F + 4`` under latent concat)."""
        img = working_image(self, x)
        b = img.shape[0]
        pe, pm, pp = self._text(b)
        negative: dict[str, Tensor] = {}
        if self.true_cfg_scale > 1:
            ne, nm, npool = self._text(b, True)
            negative = dict(
                negative_prompt_embeds=ne,
                negative_prompt_attention_mask=nm,
                negative_pooled_prompt_embeds=npool,
            )
        return run_pipeline(
            self,
            seed,
            image=img,
            prompt_embeds=pe,
            prompt_attention_mask=pm,
            pooled_prompt_embeds=pp,
            **negative,
            height=self.height,
            width=self.width,
            num_frames=frames + self.drop,
            num_inference_steps=steps,
            guidance_scale=self.guidance_scale,
            true_cfg_scale=self.true_cfg_scale,
        )

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
