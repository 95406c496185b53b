"""Architecture of the shipped toy model and how it is saved and loaded.

The toy model uses the real diffusers classes of the CogVideoX image-to-video family
(``AutoencoderKLCogVideoX``, ``CogVideoXTransformer3DModel``, ``CogVideoXDDIMScheduler``), assembled as a
``CogVideoXImageToVideoPipeline`` without text encoder or tokenizer. Sizes follow the project's
feasibility study: 64x64, 9 frames, a VAE with 4x spatial and no temporal compression (one latent frame
per frame, latent 8 channels), and a 6-layer transformer (4 heads x 48, patch 4 -> 144 video tokens,
3D RoPE plus learned positional embeddings as in CogVideoX-5b-I2V, v-prediction, zero-SNR DDIM).
The "prompt" is a fixed null embedding of shape ``(1, 1, 16)`` shipped beside the weights.
"""

from __future__ import annotations

from pathlib import Path

import torch

from stillguard.toy import folder

HEIGHT, WIDTH, NUM_FRAMES = 64, 64, 9
TEXT_LEN, TEXT_DIM = 1, 16
#: default number of DDIM steps written to ``stillguard.json``
DEFAULT_STEPS = 10

VAE_CONFIG = dict(
    in_channels=3,
    out_channels=3,
    down_block_types=("CogVideoXDownBlock3D",) * 3,
    up_block_types=("CogVideoXUpBlock3D",) * 3,
    block_out_channels=(16, 32, 32),
    latent_channels=8,
    layers_per_block=1,
    norm_num_groups=8,
    temporal_compression_ratio=1,
    sample_height=HEIGHT,
    sample_width=WIDTH,
    scaling_factor=1.0,
)

TRANSFORMER_CONFIG = dict(
    num_attention_heads=4,
    attention_head_dim=48,
    in_channels=16,
    out_channels=8,
    time_embed_dim=128,
    text_embed_dim=TEXT_DIM,
    num_layers=6,
    sample_width=WIDTH // 4,
    sample_height=HEIGHT // 4,
    sample_frames=NUM_FRAMES,
    patch_size=4,
    temporal_compression_ratio=1,
    max_text_seq_length=TEXT_LEN,
    use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True,
)

#: the CogVideoX-5b-I2V scheduler settings
SCHEDULER_CONFIG = dict(
    beta_schedule="scaled_linear",
    beta_start=0.00085,
    beta_end=0.012,
    clip_sample=False,
    prediction_type="v_prediction",
    rescale_betas_zero_snr=True,
    set_alpha_to_one=True,
    snr_shift_scale=1.0,
    timestep_spacing="trailing",
    steps_offset=0,
    num_train_timesteps=1000,
)


def weights_dir() -> Path:
    """The folder of the shipped toy pipeline inside the installed package."""
    from stillguard.toy import weights_dir as _weights_dir

    return _weights_dir()


def build_vae():
    from diffusers import AutoencoderKLCogVideoX

    return AutoencoderKLCogVideoX(**VAE_CONFIG)


def build_transformer():
    from diffusers import CogVideoXTransformer3DModel

    return CogVideoXTransformer3DModel(**TRANSFORMER_CONFIG)


def build_scheduler():
    from diffusers import CogVideoXDDIMScheduler

    return CogVideoXDDIMScheduler(**SCHEDULER_CONFIG)


def null_prompt() -> torch.Tensor:
    """The fixed null prompt the toy model is trained with.

    Shape:
        ``(1, TEXT_LEN, TEXT_DIM)``.
    """
    return torch.zeros(1, TEXT_LEN, TEXT_DIM)


def rotary_embeddings(device: torch.device | str = "cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """3D RoPE tables exactly as ``CogVideoXImageToVideoPipeline`` builds them at 64x64, 9 frames."""
    from diffusers.models.embeddings import get_3d_rotary_pos_embed
    from diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video import (
        get_resize_crop_region_for_grid,
    )

    p = TRANSFORMER_CONFIG["patch_size"]
    grid = (HEIGHT // (4 * p), WIDTH // (4 * p))
    base_w = TRANSFORMER_CONFIG["sample_width"] // p
    base_h = TRANSFORMER_CONFIG["sample_height"] // p
    crops = get_resize_crop_region_for_grid(grid, base_w, base_h)
    return get_3d_rotary_pos_embed(
        embed_dim=TRANSFORMER_CONFIG["attention_head_dim"],
        crops_coords=crops,
        grid_size=grid,
        temporal_size=NUM_FRAMES,
        device=device,
    )


def assemble(vae, transformer):
    """The diffusers pipeline made of the given trained VAE and transformer."""
    from diffusers import CogVideoXImageToVideoPipeline

    return CogVideoXImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=vae,
        transformer=transformer,
        scheduler=build_scheduler(),
    )


def export(vae, transformer, path: str | Path, *, num_inference_steps: int = DEFAULT_STEPS) -> Path:
    """Write the shipped pipeline folder: fp16 safetensors, null prompt and generation defaults
    (see :mod:`.folder`)."""
    defaults = {"height": HEIGHT, "width": WIDTH, "num_frames": NUM_FRAMES}
    defaults |= {"num_inference_steps": num_inference_steps, "guidance_scale": 1.0}
    prompt = {"prompt_embeds": null_prompt().contiguous()}
    return folder.export(assemble, vae, transformer, path, prompt, defaults, what="toy pipeline")


def load_pipeline(path: str | Path | None = None, *, dtype: torch.dtype = torch.float32):
    """Load a toy pipeline folder (default: the shipped one) with plain diffusers.

    Returns:
        ``(pipeline, prompt_embeds, defaults)``; ``prompt_embeds`` has shape ``(1, 1, 16)``.
    """
    from diffusers import CogVideoXImageToVideoPipeline

    path = Path(path) if path is not None else weights_dir()
    return folder.load(CogVideoXImageToVideoPipeline, path, dtype)
