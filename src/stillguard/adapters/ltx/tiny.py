"""The tiny random ``ltx-i2v`` model, built offline from small configs (well under a second)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._shared.build import random_models

#: the working size of the tiny model (not a square on purpose: catches h/w mix-ups)
TINY_HEIGHT, TINY_WIDTH, TINY_FRAMES = 32, 64, 9
TINY_TEXT_TOKENS, TINY_TEXT_DIM = 6, 32

# After diffusers' fast test (tests/pipelines/ltx/test_ltx_image2video.py) with 2 blocks instead of 1
# (Anti-I2V needs a shallow and a deep block). Patch size 1 and QK-norm across heads as the real model.
LTX_TINY_TRANSFORMER = dict(
    in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
    attention_head_dim=8, cross_attention_dim=32, num_layers=2, caption_channels=TINY_TEXT_DIM,
)  # fmt: skip
# 4x spatial and 4x temporal compression (the real VAE: 32x and 8x), causal encoder as the real one
LTX_TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
    decoder_spatio_temporal_scaling=(True, True, False, False),
    decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False,) * 4,
    upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1, patch_size_t=1,
    encoder_causal=True, decoder_causal=False,
)  # fmt: skip
#: the values of Lightricks/LTX-Video's scheduler (diffusers scripts/convert_ltx_to_diffusers.py)
LTX_SCHEDULER = dict(
    use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
    max_image_seq_len=4096, shift_terminal=0.1,
)  # fmt: skip


def tiny_ltx_pipe(seed: int) -> tuple[Any, Tensor, Tensor]:
    """A random ``LTXImageToVideoPipeline`` (no T5), prompt embeds ``(1, 6, 32)`` and their mask.

    The last two text tokens are padding (mask 0), so the text-mask path is exercised.
    """
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )

    models = random_models(
        seed,
        {
            "transformer": (LTXVideoTransformer3DModel, LTX_TINY_TRANSFORMER),
            "vae": (AutoencoderKLLTXVideo, LTX_TINY_VAE),
        },
    )
    models["vae"].use_framewise_encoding = models["vae"].use_framewise_decoding = False
    pipe = LTXImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**LTX_SCHEDULER),
        text_encoder=None,
        tokenizer=None,
        **models,
    )
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(1, TINY_TEXT_TOKENS, TINY_TEXT_DIM, generator=g)
    mask = torch.ones(1, TINY_TEXT_TOKENS, dtype=torch.long)
    mask[:, -2:] = 0
    return pipe, embeds, mask
