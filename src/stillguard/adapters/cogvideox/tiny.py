"""The tiny random ``cogvideox-i2v`` models, built offline from small configs (well under a second).

The configs follow diffusers' own fast tests (adapted, since their tiny text encoders live on the
hub) and keep each real model's switches: CogVideoX-5b-I2V's RoPE + learned positional embeddings
and zero-SNR v-prediction DDIM; CogVideoX1.5-5B-I2V's temporal patch 2, ``ofs`` embedding and
inverted latent scaling.
"""

from __future__ import annotations

from typing import Any

import torch

from .._shared.build import build_scheduler, random_models

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

#: CogVideoX1.5-5B-I2V's switches on the tiny model: temporal patches of 2 latent frames (the
#: pipeline pads the latent video to an even frame count), the ``ofs`` embedding (same width as the
#: time embedding, as in the real config), no learned positional embedding, no patch bias
COG15_TRANSFORMER = dict(
    COG_TRANSFORMER, patch_size_t=2, ofs_embed_dim=32, use_learned_positional_embeddings=False,
    patch_bias=False,
)  # fmt: skip
#: 1.5's VAE divides the image latent by the scaling factor (``invert_scale_latents``); 0.7 as 1.5
COG15_VAE = dict(COG_VAE, invert_scale_latents=True, scaling_factor=0.7)


def cogvideox_pipe(
    seed: int, variant: str = "1.0", *, device: str | torch.device = "cpu"
) -> tuple[Any, torch.Tensor]:
    """A random ``CogVideoXImageToVideoPipeline`` (no T5) and prompt embeds ``(1, 4, 16)``.

    ``variant`` ``"1.0"`` has CogVideoX-5b-I2V's switches, ``"1.5"`` CogVideoX1.5-5B-I2V's.
    """
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )

    configs = {"1.0": (COG_TRANSFORMER, COG_VAE), "1.5": (COG15_TRANSFORMER, COG15_VAE)}
    tr_config, vae_config = configs[variant]
    models = random_models(
        seed,
        {
            "transformer": (CogVideoXTransformer3DModel, tr_config),
            "vae": (AutoencoderKLCogVideoX, vae_config),
        },
        device,
    )
    pipe = CogVideoXImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        scheduler=build_scheduler(CogVideoXDDIMScheduler, COG_SCHEDULER),
        **models,
    )
    gen = torch.Generator().manual_seed(seed)
    return pipe, torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=gen).to(device)
