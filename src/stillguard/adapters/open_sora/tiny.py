"""The tiny random ``open-sora-1.2`` model: toy widths of stillguard's own STDiT3 and video VAE,
random weights drawn from a seed, offline."""

from __future__ import annotations

from typing import Any

import torch

from .._shared.build import seeded
from .nets.stdit3 import STDiT3Config
from .nets.vae import VideoVAEConfig
from .nets.vae_temporal import TemporalVAEConfig
from .pipeline import build
from .rflow import RFlowConfig

#: tiny test configurations (random weights): 64x64 px -> 8x8 latent -> 4x4 tokens per frame
TINY_STDIT3 = STDiT3Config(
    hidden_size=32, depth=2, num_heads=2, caption_channels=16, model_max_length=4,
    input_sq_size=64,
)  # fmt: skip
TINY_VAE = VideoVAEConfig(
    spatial=dict(
        in_channels=3, out_channels=3, latent_channels=4, layers_per_block=1, norm_num_groups=4,
        block_out_channels=[8, 8, 8, 8], down_block_types=["DownEncoderBlock2D"] * 4,
        up_block_types=["UpDecoderBlock2D"] * 4, sample_size=64,
    ),
    temporal=TemporalVAEConfig(filters=8, num_res_blocks=1, num_groups=4),
    micro_batch_size=None,
)  # fmt: skip


def opensora_pipe(seed: int) -> tuple[Any, torch.Tensor]:
    """A random :class:`~.pipeline.OpenSoraPipeline` of :data:`TINY_STDIT3` and :data:`TINY_VAE`
    (3 sampling steps) and random prompt features ``(1, 4, 16)``, drawn from one seeded stream."""
    with seeded(seed):
        pipe = build(TINY_STDIT3, TINY_VAE, RFlowConfig(num_sampling_steps=3))
        cfg = TINY_STDIT3
        return pipe, torch.randn(1, cfg.model_max_length, cfg.caption_channels)
