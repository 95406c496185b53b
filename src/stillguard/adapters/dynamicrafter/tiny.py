"""The tiny random ``dynamicrafter`` model: every switch of the official 1024 model on, at toy
widths (64×64 pixels, 4 frames, 8×8 latents), random weights drawn from a seed, offline."""

from __future__ import annotations

from typing import Any

from .._shared.build import seeded
from .weights import build

#: tiny test model: 64×64 pixels, 4 frames, 8×8 latents; every official switch kept on
TINY_FRAMES = 4
TINY: dict[str, Any] = {
    "unet": dict(
        in_channels=8, out_channels=4, model_channels=32, attention_resolutions=[1, 2],
        num_res_blocks=1, channel_mult=[1, 2], num_head_channels=16, context_dim=32,
        temporal_length=TINY_FRAMES, temporal_conv=True, addition_attention=True,
        image_cross_attention=True, image_cross_attention_scale_learnable=False, default_fs=10,
        fs_condition=True, image_tokens_per_frame=2,
    ),
    "vae": dict(
        embed_dim=4, double_z=True, z_channels=4, resolution=256, in_channels=3, out_ch=3, ch=32,
        ch_mult=[1, 1, 1, 1], num_res_blocks=1, attn_resolutions=[], dropout=0.0,
    ),
    "clip": dict(
        embed_dim=32,
        vision=dict(image_size=224, patch_size=32, width=32, layers=2, head_width=16),
        text=dict(context_length=77, vocab_size=49408, width=32, heads=2, layers=2),
    ),
    "resampler": dict(
        dim=32, depth=1, dim_head=16, heads=2, num_queries=2, embedding_dim=32, output_dim=32,
        ff_mult=2, video_length=TINY_FRAMES,
    ),
    "schedule": dict(
        timesteps=1000, linear_start=0.00085, linear_end=0.012, rescale_betas_zero_snr=True,
        parameterization="v", use_dynamic_rescale=True, base_scale=0.3, turning_step=400,
        scale_factor=0.18215,
    ),
}  # fmt: skip


def dynamicrafter_model(seed: int) -> Any:
    """A random :class:`~.nets.model.DCModel` of :data:`TINY`, without the text tower."""
    with seeded(seed):
        return build(TINY, with_text=False)
