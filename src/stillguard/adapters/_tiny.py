"""Tiny random pipelines built offline from configs, for tests and quick runs (< 1 s each).

The configs follow diffusers' own fast tests (adapted, since their tiny text/image encoders live on
the hub) and keep each real model's switches: CogVideoX-5b-I2V's RoPE + learned positional
embeddings and zero-SNR v-prediction DDIM; SVD-xt's EDM Euler scheduler, an 8× VAE and a CLIP
image encoder at 224 px (coarse 32-px patches). Weights are drawn from ``seed`` without touching
the global RNG state.
"""

from __future__ import annotations

from typing import Any

import torch

SIZE, FRAMES = 64, 9
TEXT_TOKENS, TEXT_DIM = 4, 16

COG_TRANSFORMER = dict(
    num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=32,
    text_embed_dim=TEXT_DIM, num_layers=2, sample_width=SIZE // 8, sample_height=SIZE // 8,
    sample_frames=FRAMES, patch_size=2, temporal_compression_ratio=4,
    max_text_seq_length=TEXT_TOKENS, use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True,
)  # fmt: skip
COG_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
    up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
    layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4, sample_height=SIZE,
    sample_width=SIZE,
)  # fmt: skip
#: the values of CogVideoX-5b-I2V's scheduler config
COG_SCHEDULER = dict(
    beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
    prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True,
    snr_shift_scale=1.0, timestep_spacing="trailing", steps_offset=0, num_train_timesteps=1000,
)  # fmt: skip

SVD_UNET = dict(
    block_out_channels=(32, 64), layers_per_block=1, sample_size=SIZE // 8, in_channels=8,
    out_channels=4, cross_attention_dim=32,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    num_attention_heads=(2, 4), transformer_layers_per_block=1,
    projection_class_embeddings_input_dim=3 * 32, addition_time_embed_dim=32, num_frames=FRAMES,
)  # fmt: skip
# GroupNorm in this VAE has 32 groups, hence 32 channels; 4 blocks = 8x like the real one
SVD_VAE = dict(
    block_out_channels=[32, 32, 32, 32], in_channels=3, out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4, latent_channels=4, layers_per_block=1,
)  # fmt: skip
SVD_CLIP = dict(
    hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
    image_size=224, intermediate_size=37, patch_size=32,
)  # fmt: skip
#: the values of SVD-xt's scheduler config
SVD_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    interpolation_type="linear", num_train_timesteps=1000, prediction_type="v_prediction",
    sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
    timestep_type="continuous", use_karras_sigmas=True,
)  # fmt: skip


def cogvideox_pipe(seed: int) -> tuple[Any, torch.Tensor]:
    """A random ``CogVideoXImageToVideoPipeline`` (no T5) and prompt embeds ``(1, 4, 16)``."""
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = CogVideoXTransformer3DModel(**COG_TRANSFORMER)
        vae = AutoencoderKLCogVideoX(**COG_VAE)
    pipe = CogVideoXImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=vae,
        transformer=transformer,
        scheduler=CogVideoXDDIMScheduler(**COG_SCHEDULER),
    )
    gen = torch.Generator().manual_seed(seed)
    return pipe, torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=gen)


def svd_pipe(seed: int) -> Any:
    """A random ``StableVideoDiffusionPipeline`` with a tiny CLIP image encoder."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessorPil, CLIPVisionConfig, CLIPVisionModelWithProjection

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        unet = UNetSpatioTemporalConditionModel(**SVD_UNET)
        vae = AutoencoderKLTemporalDecoder(**SVD_VAE)
        image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig(**SVD_CLIP))
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=image_encoder,
        unet=unet,
        scheduler=EulerDiscreteScheduler(**SVD_SCHEDULER),
        # the torchvision-free processor (transformers 5 falls back to it anyway, with a warning)
        feature_extractor=CLIPImageProcessorPil(crop_size=224, size=224),
    )
