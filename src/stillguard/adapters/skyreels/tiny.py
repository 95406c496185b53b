"""Tiny random SkyReels-V2 image-to-video pipelines, built offline from configs (well under a second).

Two flavours, one per published SkyReels-V2 image-to-video design:

* ``"i2v"``: SkyReels-V2-I2V's design on ``SkyReelsV2ImageToVideoPipeline``: 36-channel input
  (noise 16 | mask 4 | image latent 16) *and* CLIP image tokens (``hidden_states[-2]``) through the
  image cross-attention (``image_dim``/``added_kv_proj_dim``); a tiny CLIP at 32 px / patch 8 gives
  17 image tokens;
* ``"diffusion-forcing"``: SkyReels-V2-DF's design on
  ``SkyReelsV2DiffusionForcingImageToVideoPipeline``: 16 input channels, the photo's latent as the
  prefix frame (per-frame timestep 0), no image encoder, and the fps embedding of the 1.3B DF
  checkpoint (``inject_sample_info``) so that path runs too.

Sizes after diffusers' own fast tests (``tests/pipelines/skyreels_v2/``) scaled down, with the real
scheduler's switches (UniPC, flow prediction, flow sigmas, the I2V shift 5). The working size is not
square on purpose (catches height/width mix-ups). Prompt embeddings are precomputed and padded to
512 tokens, as the pipelines' UMT5 path pads them; no tokenizer.
"""

from __future__ import annotations

from typing import Any

import torch

from .._shared.build import random_models

HEIGHT, WIDTH, FRAMES = 32, 48, 9
TEXT_TOKENS, TEXT_DIM, PROMPT_TOKENS = 512, 16, 6
FLAVOURS = ("i2v", "diffusion-forcing")

_TRANSFORMER = dict(
    patch_size=(1, 2, 2), num_attention_heads=2, attention_head_dim=12, out_channels=16,
    text_dim=TEXT_DIM, freq_dim=16, ffn_dim=32, num_layers=4, cross_attn_norm=True,
    qk_norm="rms_norm_across_heads", rope_max_seq_len=32,
)  # fmt: skip
_VAE = dict(base_dim=3, z_dim=16, dim_mult=[1, 1, 1, 1], num_res_blocks=1,
            temperal_downsample=[False, True, True])  # fmt: skip
_CLIP = dict(
    hidden_size=8, projection_dim=8, num_hidden_layers=2, num_attention_heads=2, image_size=32,
    intermediate_size=16, patch_size=8,
)  # fmt: skip
#: the published scheduler's switches, with the shift the pipelines' docstrings use for I2V
SCHEDULER = dict(prediction_type="flow_prediction", use_flow_sigmas=True,
                 num_train_timesteps=1000, flow_shift=5.0)  # fmt: skip


def skyreels_pipe(seed: int, flavour: str = "i2v") -> tuple[Any, torch.Tensor]:
    """A random SkyReels-V2 image-to-video pipeline (no UMT5) and prompt embeds ``(1, 512, 16)``."""
    import diffusers
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    if flavour not in FLAVOURS:
        raise ValueError(f"unknown tiny SkyReels flavour {flavour!r}: one of {', '.join(FLAVOURS)}")
    tr = diffusers.SkyReelsV2Transformer3DModel
    specs: dict[str, tuple[type, dict[str, Any]]] = {}
    extra: dict[str, Any] = {}
    if flavour == "i2v":
        clip = dict(in_channels=36, image_dim=_CLIP["hidden_size"], added_kv_proj_dim=24)
        specs["transformer"] = (tr, {**_TRANSFORMER, **clip})
        specs["vae"] = (diffusers.AutoencoderKLWan, _VAE)
        specs["image_encoder"] = (CLIPVisionModelWithProjection, _CLIP)
        extra["image_processor"] = CLIPImageProcessorPil(
            size={"shortest_edge": _CLIP["image_size"]}, crop_size=_CLIP["image_size"]
        )
        cls = diffusers.SkyReelsV2ImageToVideoPipeline
    else:
        specs["transformer"] = (tr, {**_TRANSFORMER, "in_channels": 16, "inject_sample_info": True})
        specs["vae"] = (diffusers.AutoencoderKLWan, _VAE)
        cls = diffusers.SkyReelsV2DiffusionForcingImageToVideoPipeline
    pipe = cls(
        tokenizer=None,
        text_encoder=None,
        scheduler=diffusers.UniPCMultistepScheduler(**SCHEDULER),
        **random_models(seed, specs),
        **extra,
    )
    gen = torch.Generator().manual_seed(seed)
    embeds = torch.zeros(1, TEXT_TOKENS, TEXT_DIM)
    # a real UMT5 prompt is a few tokens followed by zeros up to 512 (the pipeline pads so)
    embeds[:, :PROMPT_TOKENS] = torch.randn(1, PROMPT_TOKENS, TEXT_DIM, generator=gen)
    return pipe, embeds
