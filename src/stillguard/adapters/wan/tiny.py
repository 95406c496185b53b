"""Tiny random Wan image-to-video pipelines, built offline from configs (well under a second).

Three flavours, one per published Wan image-to-video design, all on ``WanImageToVideoPipeline``:

* ``"wan2.1"``: Wan2.1-I2V-14B's design: 36-channel input (noise 16 | mask 4 | image latent 16)
  *and* CLIP image tokens (``hidden_states[-2]``) through the image cross-attention
  (``image_dim``/``added_kv_proj_dim``); a tiny CLIP at 32 px / patch 8 gives 17 image tokens;
* ``"wan2.2-a14b"``: Wan2.2-I2V-A14B's design: the same concat, no CLIP, two transformers
  switched at ``boundary_ratio = 0.9`` (the published value);
* ``"wan2.2-ti2v"``: Wan2.2-TI2V-5B's design: ``expand_timesteps`` (the photo's latent replaces
  latent frame 0, whose tokens get timestep 0), a 16× VAE with ``patch_size=2``, z=48 (here 12).

The configs follow diffusers' own fast tests (``tests/pipelines/wan/test_wan_image_to_video.py``,
``test_wan_22_image_to_video.py``) scaled down, with the real schedulers' switches (UniPC, flow
prediction, flow sigmas). Prompt embeddings are precomputed and padded to **512 tokens**: Wan's
attention processor splits image tokens from text tokens assuming exactly 512 text tokens, so a
shorter prompt would silently swap image and text tokens. No tokenizer, no ftfy.
"""

from __future__ import annotations

from typing import Any

import torch

from .._shared.build import random_models

SIZE, FRAMES = 64, 9
TEXT_TOKENS, TEXT_DIM, PROMPT_TOKENS = 512, 16, 6
FLAVOURS = ("wan2.1", "wan2.2-a14b", "wan2.2-ti2v")

_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, in_channels=36,
    out_channels=16, text_dim=TEXT_DIM, freq_dim=16, ffn_dim=32, num_layers=4,
    cross_attn_norm=True, qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
)  # fmt: skip
_VAE = dict(
    base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
    temperal_downsample=[False, True, True],
)  # fmt: skip
_VAE22 = dict(
    base_dim=4, z_dim=12, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
    temperal_downsample=[False, True, True], is_residual=True, in_channels=12, out_channels=12,
    patch_size=2, scale_factor_spatial=16, scale_factor_temporal=4,
    latents_mean=[0.0] * 12, latents_std=[1.0] * 12,
)  # fmt: skip
_CLIP = dict(
    hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2, image_size=32,
    intermediate_size=16, patch_size=8,
)  # fmt: skip
#: the switches of the published Wan schedulers (UniPC, flow prediction on flow sigmas)
SCHEDULER = dict(
    prediction_type="flow_prediction", use_flow_sigmas=True, num_train_timesteps=1000,
    flow_shift=3.0,
)  # fmt: skip


def wan_pipe(seed: int, flavour: str = "wan2.1") -> tuple[Any, torch.Tensor]:
    """A random ``WanImageToVideoPipeline`` (no UMT5) and prompt embeds ``(1, 512, 16)``."""
    from diffusers import (
        AutoencoderKLWan,
        UniPCMultistepScheduler,
        WanImageToVideoPipeline,
        WanTransformer3DModel,
    )
    from transformers import CLIPImageProcessorPil, CLIPVisionModel

    if flavour not in FLAVOURS:
        raise ValueError(f"unknown tiny Wan flavour {flavour!r}: one of {', '.join(FLAVOURS)}")
    specs: dict[str, tuple[type, dict[str, Any]]] = {}
    extra: dict[str, Any] = {}
    if flavour == "wan2.1":
        clip = dict(image_dim=_CLIP["hidden_size"], added_kv_proj_dim=24)
        specs["transformer"] = (WanTransformer3DModel, {**_TRANSFORMER, **clip})
        specs["vae"] = (AutoencoderKLWan, _VAE)
        specs["image_encoder"] = (CLIPVisionModel, _CLIP)
        extra["image_processor"] = CLIPImageProcessorPil(
            size={"shortest_edge": _CLIP["image_size"]}, crop_size=_CLIP["image_size"]
        )
    elif flavour == "wan2.2-a14b":
        specs["transformer"] = (WanTransformer3DModel, _TRANSFORMER)
        specs["transformer_2"] = (WanTransformer3DModel, _TRANSFORMER)
        specs["vae"] = (AutoencoderKLWan, _VAE)
        extra["boundary_ratio"] = 0.9
    else:
        z = _VAE22["z_dim"]
        specs["transformer"] = (
            WanTransformer3DModel, {**_TRANSFORMER, "in_channels": z, "out_channels": z}
        )  # fmt: skip
        specs["vae"] = (AutoencoderKLWan, _VAE22)
        extra["expand_timesteps"] = True
    pipe = WanImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        scheduler=UniPCMultistepScheduler(**SCHEDULER),
        **random_models(seed, specs),
        **extra,
    )
    gen = torch.Generator().manual_seed(seed)
    embeds = torch.zeros(1, TEXT_TOKENS, TEXT_DIM)
    # a real UMT5 prompt is a few tokens followed by zeros up to 512 (the pipeline pads so)
    embeds[:, :PROMPT_TOKENS] = torch.randn(1, PROMPT_TOKENS, TEXT_DIM, generator=gen)
    return pipe, embeds
