"""The tiny random ``ltx2-i2v`` model, built offline from small configs (well under a second).

Every component of ``LTX2ImageToVideoPipeline`` but the Gemma-3 text encoder and its tokenizer:
the transformer (video and audio streams, 2 blocks), the causal video VAE (4x spatial, 4x
temporal), the audio VAE, the vocoder and the text connectors. The prompt is given as what Gemma
would hand the connectors: ``(1, 6, 32·3)`` stacked hidden states (caption width 32, 2 layers + the
embedding output) with a mask whose first two tokens are left padding, as Gemma's tokenizer pads.
Sizes follow ``scripts/probes/tiny_builds_a.py``; the switches the real model keeps are kept (split
RoPE, QK-norm across heads, causal encoder, no timestep-conditioned decoder, no perturbed
attention, i.e. the LTX-2.0 layout of ``configs/ltx-2-19b``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._shared.build import random_models

#: the working size of the tiny model (not a square on purpose: catches h/w mix-ups)
TINY_HEIGHT, TINY_WIDTH, TINY_FRAMES = 32, 64, 9
#: caption width (= connector heads × head dim, as the connectors require), Gemma layers + 1
TINY_CAPTION, TINY_LAYERS, TINY_TEXT_TOKENS = 32, 3, 6

TRANSFORMER = dict(
    in_channels=8, out_channels=8, num_attention_heads=2, attention_head_dim=8,
    cross_attention_dim=16, audio_in_channels=4, audio_out_channels=4, audio_num_attention_heads=2,
    audio_attention_head_dim=4, audio_cross_attention_dim=8, num_layers=2,
    caption_channels=TINY_CAPTION, rope_double_precision=False, rope_type="split",
)  # fmt: skip
CONNECTORS = dict(
    caption_channels=TINY_CAPTION, text_proj_in_factor=TINY_LAYERS,
    video_connector_num_attention_heads=4, video_connector_attention_head_dim=8,
    video_connector_num_layers=1, video_connector_num_learnable_registers=None,
    audio_connector_num_attention_heads=4, audio_connector_attention_head_dim=8,
    audio_connector_num_layers=1, audio_connector_num_learnable_registers=None,
    connector_rope_base_seq_len=32, rope_double_precision=False, rope_type="split",
)  # fmt: skip
# two spatio-temporal down blocks: 4x spatial, 4x temporal (the real VAE: 32x and 8x)
VAE = dict(
    latent_channels=8, block_out_channels=(8, 8), decoder_block_out_channels=(8, 8),
    layers_per_block=(1, 1, 1), decoder_layers_per_block=(1, 1, 1),
    spatio_temporal_scaling=(True, True), decoder_spatio_temporal_scaling=(True, True),
    decoder_inject_noise=(False, False, False), downsample_type=("spatiotemporal",) * 2,
    upsample_type=("spatiotemporal",) * 2, upsample_residual=(False, False),
    upsample_factor=(1, 1), timestep_conditioning=False, patch_size=1, patch_size_t=1,
)  # fmt: skip
AUDIO_VAE = dict(
    base_channels=4, ch_mult=(1,), num_res_blocks=1, attn_resolutions=None, resolution=32,
    latent_channels=2, mid_block_add_attention=False, mel_bins=8,
)  # fmt: skip
VOCODER = dict(
    in_channels=16, hidden_channels=32, upsample_kernel_sizes=[4, 4], upsample_factors=[2, 2],
    resnet_kernel_sizes=[3], resnet_dilations=[[1, 3, 5]], output_sampling_rate=16000,
)  # fmt: skip
#: the values of Lightricks/LTX-2's scheduler (configs/ltx-2-19b/scheduler)
SCHEDULER = dict(
    use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
    max_image_seq_len=4096, shift_terminal=0.1,
)  # fmt: skip


def tiny_ltx2_pipe(seed: int) -> tuple[Any, dict[str, Tensor]]:
    """A random ``LTX2ImageToVideoPipeline`` (no Gemma) and its prompt tensors: stacked hidden
    states ``(1, 6, 96)`` and a mask with two left-padding tokens; negatives are zeros."""
    from diffusers import (
        AutoencoderKLLTX2Audio,
        AutoencoderKLLTX2Video,
        FlowMatchEulerDiscreteScheduler,
        LTX2ImageToVideoPipeline,
        LTX2VideoTransformer3DModel,
    )
    from diffusers.pipelines.ltx2.connectors import LTX2TextConnectors
    from diffusers.pipelines.ltx2.vocoder import LTX2Vocoder

    models = random_models(
        seed,
        {
            "transformer": (LTX2VideoTransformer3DModel, TRANSFORMER),
            "connectors": (LTX2TextConnectors, CONNECTORS),
            "vae": (AutoencoderKLLTX2Video, VAE),
            "audio_vae": (AutoencoderKLLTX2Audio, AUDIO_VAE),
            "vocoder": (LTX2Vocoder, VOCODER),
        },
    )
    models["vae"].use_framewise_encoding = models["vae"].use_framewise_decoding = False
    pipe = LTX2ImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**SCHEDULER),
        text_encoder=None,
        tokenizer=None,
        **models,
    )
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(1, TINY_TEXT_TOKENS, TINY_CAPTION * TINY_LAYERS, generator=g)
    mask = torch.ones(1, TINY_TEXT_TOKENS, dtype=torch.long)
    mask[:, :2] = 0
    return pipe, {"prompt_embeds": embeds, "prompt_attention_mask": mask}
