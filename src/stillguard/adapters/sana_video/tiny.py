"""The tiny random ``sana-video-i2v`` model, built offline from small configs (well under a second).

After diffusers' fast test (``tests/pipelines/sana_video``) and the issue-29 probe
(``scripts/probes/tiny_builds_c.py``): the real model's design (linear self-attention with RoPE and
QK RMS-norm across heads, Gemma cross-attention, the GLUMB temporal feed-forward, patch 1×2×2) at 2
blocks of 2×12 heads (Anti-I2V needs a shallow and a deep block), a Wan VAE of the real layout
scaled down (8× spatial, 4× temporal, 16 channels) and the real scheduler's switches (DPM-Solver++
on flow sigmas, shift 8). 64×96 and 9 frames: 3 latent frames of 4×6 tokens.
"""

from __future__ import annotations

from typing import Any

import torch

from .._shared.build import random_models

HEIGHT, WIDTH, FRAMES = 64, 96, 9
TEXT, TEXT_DIM = 6, 8

TRANSFORMER = dict(
    in_channels=16, out_channels=16, num_attention_heads=2, attention_head_dim=12, num_layers=2,
    num_cross_attention_heads=2, cross_attention_head_dim=12, cross_attention_dim=24,
    caption_channels=TEXT_DIM, mlp_ratio=2.5, attention_bias=False, sample_size=8,
    patch_size=(1, 2, 2), norm_elementwise_affine=False, norm_eps=1e-6,
    qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
)  # fmt: skip
VAE = dict(
    base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
    temperal_downsample=[False, True, True],
)  # fmt: skip
SCHEDULER = dict(flow_shift=8.0, use_flow_sigmas=True, prediction_type="flow_prediction")
SETTINGS = dict(
    height=HEIGHT, width=WIDTH, num_frames=FRAMES, num_inference_steps=4, guidance_scale=6.0
)


def tiny_pipe(seed: int) -> tuple[Any, dict[str, torch.Tensor]]:
    """A random ``SanaImageToVideoPipeline`` (no Gemma) and its prompt tensors: embeddings
    ``(1, 6, 8)`` whose last two tokens are padding (mask 0)."""
    from diffusers import (
        AutoencoderKLWan,
        DPMSolverMultistepScheduler,
        SanaImageToVideoPipeline,
        SanaVideoTransformer3DModel,
    )

    models = random_models(
        seed,
        {
            "transformer": (SanaVideoTransformer3DModel, TRANSFORMER),
            "vae": (AutoencoderKLWan, VAE),
        },
    )
    pipe = SanaImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        scheduler=DPMSolverMultistepScheduler(**SCHEDULER),
        **models,
    )
    g = torch.Generator().manual_seed(seed)
    mask = torch.ones(1, TEXT, dtype=torch.long)
    mask[:, -2:] = 0
    return pipe, {
        "prompt_embeds": torch.randn(1, TEXT, TEXT_DIM, generator=g),
        "prompt_attention_mask": mask,
    }
