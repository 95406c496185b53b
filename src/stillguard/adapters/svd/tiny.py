"""The tiny random ``svd`` model, built offline from small configs (well under a second).

The configs follow diffusers' own fast tests (adapted, since their tiny image encoder lives on the
hub) and keep SVD-xt's switches: its EDM Euler scheduler, an 8x VAE and a CLIP image encoder at
224 px (coarse 32-px patches).
"""

from __future__ import annotations

from typing import Any

import torch

from .._shared.build import build_scheduler, random_models

SIZE, FRAMES = 64, 9

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


def svd_pipe(seed: int, *, device: str | torch.device = "cpu") -> Any:
    """A random ``StableVideoDiffusionPipeline`` with a tiny CLIP image encoder."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    models = random_models(
        seed,
        {
            "unet": (UNetSpatioTemporalConditionModel, SVD_UNET),
            "vae": (AutoencoderKLTemporalDecoder, SVD_VAE),
            "image_encoder": (CLIPVisionModelWithProjection, SVD_CLIP),
        },
        device,
    )
    return StableVideoDiffusionPipeline(
        scheduler=build_scheduler(EulerDiscreteScheduler, SVD_SCHEDULER),
        # the torchvision-free processor (transformers 5 falls back to it anyway, with a warning)
        feature_extractor=CLIPImageProcessorPil(crop_size=224, size=224),
        **models,
    )
