"""The tiny random ``kandinsky5-i2v`` model, built offline from small configs (well under a second).

After diffusers' fast test (``tests/pipelines/kandinsky5/test_kandinsky5_i2v.py``) scaled to what
the attacks need: 4 visual blocks (Anti-I2V pulls deep blocks onto a shallow one) of 2 heads × 8
(``axes_dims`` 2+2+4), 1 text block, ``visual_cond`` on (16 + 16 + 1 input channels, as the Pro
checkpoint), regular (dense) attention. The HunyuanVideo VAE at 8× spatial and 4× temporal
compression. **17 frames** (5 latent frames): the pipeline's ``normalize_first_frame`` rescales the
first 4 latent frames to the statistics of the next ones and gives NaN when there are none (fewer
than 5 latent frames, diffusers 0.42.1). The scheduler's shift 10 is the real one (derived from the
official config's ``scheduler_scale``). The modulation output layers, zero in diffusers' constructor,
get a default random draw (else every block is the identity). Prompt embeddings stand in for Qwen2.5-VL (6 tokens) and
the pooled CLIP-L text vector.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._shared.build import random_models, seeded

HEIGHT, WIDTH, FRAMES = 32, 48, 17
TEXT_TOKENS, TEXT_DIM, POOLED_DIM = 6, 32, 16

TRANSFORMER = dict(
    in_visual_dim=16, in_text_dim=TEXT_DIM, in_text_dim2=POOLED_DIM, time_dim=16, out_visual_dim=16,
    patch_size=(1, 2, 2), model_dim=16, ff_dim=32, num_text_blocks=1, num_visual_blocks=4,
    axes_dims=(2, 2, 4), visual_cond=True, attention_type="regular",
)  # fmt: skip
VAE = dict(
    block_out_channels=[8, 8, 8, 8], latent_channels=16, layers_per_block=1,
    down_block_types=["HunyuanVideoDownBlock3D"] * 4, up_block_types=["HunyuanVideoUpBlock3D"] * 4,
    mid_block_add_attention=False, norm_num_groups=4, spatial_compression_ratio=8,
    temporal_compression_ratio=4,
)  # fmt: skip
#: the real scheduler (shift 10)
SCHEDULER = dict(num_train_timesteps=1000, shift=10.0, use_dynamic_shifting=False)


def tiny_kandinsky_pipe(seed: int) -> tuple[Any, dict[str, Tensor]]:
    """A random ``Kandinsky5I2VPipeline`` (no text encoders) and its prompt tensors: Qwen
    embeddings ``(1, 6, 32)`` and a pooled CLIP vector ``(1, 16)``, the negative ones zeros."""
    import diffusers

    models = random_models(
        seed,
        {
            "transformer": (diffusers.Kandinsky5Transformer3DModel, TRANSFORMER),
            "vae": (diffusers.AutoencoderKLHunyuanVideo, VAE),
        },
    )
    # diffusers zero-initialises every modulation's output layer (a trained checkpoint has learned
    # ones): left so, each block's gates are 0 and every visual block is the identity, so no block
    # depth would be seen by the attacks; give them torch's default Linear draw instead
    with seeded(seed + 1):
        for name, module in models["transformer"].named_modules():
            if name.endswith("modulation.out_layer"):
                module.reset_parameters()
    pipe = diffusers.Kandinsky5I2VPipeline(
        text_encoder=None, tokenizer=None, text_encoder_2=None, tokenizer_2=None,
        scheduler=diffusers.FlowMatchEulerDiscreteScheduler(**SCHEDULER), **models,
    )  # fmt: skip
    g = torch.Generator().manual_seed(seed)
    qwen = torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=g)
    clip = torch.randn(1, POOLED_DIM, generator=g)
    prompt = {
        "prompt_embeds_qwen": qwen,
        "prompt_embeds_clip": clip,
        "negative_prompt_embeds_qwen": torch.zeros_like(qwen),
        "negative_prompt_embeds_clip": torch.zeros_like(clip),
    }
    return pipe, prompt
