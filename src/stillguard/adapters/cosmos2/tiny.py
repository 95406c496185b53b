"""The tiny random ``cosmos2-i2v`` model, built offline from small configs (well under a second).

``Cosmos2VideoToWorldPipeline`` without T5 and with the guardrail stand-in
(:func:`~.guardrail.stand_in`): a 2-block ``CosmosTransformer3DModel`` that keeps the real model's
switches (16 + 1 condition-mask input channels, the padding-mask channel, AdaLN-LoRA, patch
``(1, 2, 2)``, RoPE scale ``(1, 3, 3)``, no extra positional embedding), a small Wan VAE (8x
spatial, 4x temporal, causal, 16 channels) and the Karras flow-matching scheduler. Sizes follow
``scripts/probes/tiny_builds_c.py``. The prompt is a ``(1, 6, 32)`` T5-like embedding; the negative
prompt is zeros (the real pipeline embeds a long default negative prompt with T5).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._shared.build import random_models
from .guardrail import stand_in

#: the working size of the tiny model (not a square on purpose: catches h/w mix-ups)
TINY_HEIGHT, TINY_WIDTH, TINY_FRAMES = 32, 64, 9
TINY_TEXT_TOKENS, TINY_TEXT_DIM = 6, 32

TRANSFORMER = dict(
    in_channels=17, out_channels=16, num_attention_heads=2, attention_head_dim=16, num_layers=2,
    mlp_ratio=2, text_embed_dim=TINY_TEXT_DIM, adaln_lora_dim=4, max_size=(4, 32, 32),
    patch_size=(1, 2, 2), rope_scale=(1.0, 3.0, 3.0), concat_padding_mask=True,
    extra_pos_embed_type=None,
)  # fmt: skip
VAE = dict(
    base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
    temperal_downsample=[False, True, True],
)  # fmt: skip


def tiny_cosmos2_pipe(seed: int) -> tuple[Any, Tensor]:
    """A random ``Cosmos2VideoToWorldPipeline`` (no T5, guardrail stand-in) and prompt embeds
    ``(1, 6, 32)``."""
    from diffusers import (
        AutoencoderKLWan,
        Cosmos2VideoToWorldPipeline,
        CosmosTransformer3DModel,
        FlowMatchEulerDiscreteScheduler,
    )

    models = random_models(
        seed,
        {
            "transformer": (CosmosTransformer3DModel, TRANSFORMER),
            "vae": (AutoencoderKLWan, VAE),
        },
    )
    pipe = Cosmos2VideoToWorldPipeline(
        text_encoder=None,
        tokenizer=None,
        scheduler=FlowMatchEulerDiscreteScheduler(use_karras_sigmas=True),
        safety_checker=stand_in(),
        **models,
    )
    g = torch.Generator().manual_seed(seed)
    return pipe, torch.randn(1, TINY_TEXT_TOKENS, TINY_TEXT_DIM, generator=g)
