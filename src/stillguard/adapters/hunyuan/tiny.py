"""The tiny random ``hunyuan-i2v`` models, built offline from small configs (well under a second):
latent concat (the 33-channel design, the registry's tiny) or token replace (the 16-channel one)."""

from __future__ import annotations

from typing import Any

from .._shared.build import random_models

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


def hunyuan_pipe(
    seed: int, image_condition_type: str, absent: tuple[str, ...]
) -> tuple[Any, dict[str, Any]]:
    """A random ``HunyuanVideoImageToVideoPipeline`` (the components in ``absent`` ``None``) and
    its transformer config; ``"token_replace"`` is the 16-channel, guidance-distilled variant."""
    from diffusers import (
        AutoencoderKLHunyuanVideo,
        FlowMatchEulerDiscreteScheduler,
        HunyuanVideoImageToVideoPipeline,
        HunyuanVideoTransformer3DModel,
    )

    config = dict(TINY_TRANSFORMER, image_condition_type=image_condition_type)
    if image_condition_type == "token_replace":
        config.update(in_channels=4, guidance_embeds=True)
    models = random_models(
        seed,
        {
            "transformer": (HunyuanVideoTransformer3DModel, config),
            "vae": (AutoencoderKLHunyuanVideo, TINY_VAE),
        },
    )
    pipe = HunyuanVideoImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(shift=7.0), **models, **dict.fromkeys(absent)
    )
    return pipe, config
