"""The tiny random ``hunyuan15-i2v`` model, built offline from small configs (well under a second).

After diffusers' fast test (``tests/pipelines/hunyuan_video1_5``) and the issue-29 probe
(``scripts/probes/tiny_builds_a.py``), scaled so every road is exercised: the 9-channel input
(4 noise + 4 photo latent + 1 mask, the real model's 32+32+1), 2 dual-stream blocks of 2x8 heads
(Anti-I2V needs a shallow and a deep block), a SigLIP tower of 16 image tokens (the real one: 729),
and a VAE with 8x spatial and 4x temporal compression (real: 16x, 4x): 3 latent frames of 4x6
tokens. ``target_size=40`` makes the working size 32x48 one of the pipeline's aspect-ratio
buckets (the pipeline picks its size from the photo among them), so the pipeline generates at the
working size. The ByT5 projection
(``context_embedder_2``) has a hard-coded 2048 hidden width: 4.3 M of the tiny model's parameters.
"""

from __future__ import annotations

from typing import Any

import torch

from .._shared.build import random_models

#: working size and frames of the tiny model (not a square on purpose: catches h/w mix-ups)
HEIGHT, WIDTH, FRAMES = 32, 48, 9
#: Qwen tokens (last 2 padding), ByT5 tokens (last 2 padding), their widths
TEXT, TEXT_2, TEXT_DIM, TEXT_2_DIM = 6, 5, 16, 32

TRANSFORMER = dict(
    in_channels=2 * 4 + 1, out_channels=4, num_attention_heads=2, attention_head_dim=8,
    num_layers=2, num_refiner_layers=1, mlp_ratio=2.0, patch_size=1, patch_size_t=1,
    text_embed_dim=TEXT_DIM, text_embed_2_dim=TEXT_2_DIM, image_embed_dim=12,
    rope_axes_dim=(2, 2, 4), target_size=40, task_type="i2v",
)  # fmt: skip
VAE = dict(
    latent_channels=4, block_out_channels=(8, 8, 8, 8), layers_per_block=1,
    spatial_compression_ratio=8, temporal_compression_ratio=4, downsample_match_channel=False,
    upsample_match_channel=False,
)  # fmt: skip
SIGLIP = dict(
    hidden_size=12, intermediate_size=16, num_hidden_layers=1, num_attention_heads=2,
    image_size=32, patch_size=8,
)  # fmt: skip
SETTINGS = dict(
    height=HEIGHT, width=WIDTH, num_frames=FRAMES, num_inference_steps=4, guidance_scale=6.0
)


def tiny_pipe(seed: int, absent: tuple[str, ...]) -> tuple[Any, dict[str, torch.Tensor]]:
    """A random ``HunyuanVideo15ImageToVideoPipeline`` (``absent`` components ``None``) and its
    prompt tensors (Qwen ``(1, 6, 16)`` and ByT5 ``(1, 5, 32)`` embeddings with masks)."""
    from diffusers import (
        AutoencoderKLHunyuanVideo15,
        ClassifierFreeGuidance,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideo15ImageToVideoPipeline,
        HunyuanVideo15Transformer3DModel,
    )
    from transformers import SiglipImageProcessorPil, SiglipVisionModel

    models = random_models(
        seed,
        {
            "transformer": (HunyuanVideo15Transformer3DModel, TRANSFORMER),
            "vae": (AutoencoderKLHunyuanVideo15, VAE),
            "image_encoder": (SiglipVisionModel, SIGLIP),
        },
    )
    side = SIGLIP["image_size"]
    pipe = HunyuanVideo15ImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=5.0),
        guider=ClassifierFreeGuidance(guidance_scale=SETTINGS["guidance_scale"]),
        feature_extractor=SiglipImageProcessorPil(size={"height": side, "width": side}),
        **models,
        **dict.fromkeys(absent),
    )
    g = torch.Generator().manual_seed(seed)
    prompt = {
        "prompt_embeds": torch.randn(1, TEXT, TEXT_DIM, generator=g),
        "prompt_embeds_mask": torch.ones(1, TEXT, dtype=torch.long),
        "prompt_embeds_2": torch.randn(1, TEXT_2, TEXT_2_DIM, generator=g),
        "prompt_embeds_mask_2": torch.ones(1, TEXT_2, dtype=torch.long),
    }
    prompt["prompt_embeds_mask"][:, -2:] = 0
    prompt["prompt_embeds_mask_2"][:, -2:] = 0
    return pipe, prompt
