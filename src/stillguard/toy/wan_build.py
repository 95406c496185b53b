"""Architecture of the shipped Wan-family toy model ("toy-wan") and how it is saved and loaded.

A second toy of another family than :mod:`stillguard.toy.build` (CogVideoX), so that transfer
between families can be studied offline. Real diffusers classes of the Wan family
(``AutoencoderKLWan``, ``WanTransformer3DModel``, ``UniPCMultistepScheduler`` with flow sigmas),
assembled as a ``WanImageToVideoPipeline`` without text encoder, tokenizer **or CLIP image
encoder**: the Wan2.2-I2V conditioning (the VAE latent of ``[photo, grey, grey, ...]`` plus a
4-channel frame mask concatenated on channels: ``noise 16 | mask 4 | image latent 16`` = 36
input channels), with one transformer (Wan2.2-I2V-A14B has two experts; one is enough here).

Sizes: 64x64, 9 frames like the CogVideoX toy. The causal Wan VAE compresses time 4x
(9 frames -> 3 latent frames) and, with two down-sampling stages (``dim_mult`` of length 3)
instead of Wan's three, space 4x (64 -> 16), latent 16 channels as in Wan2.1/2.2-A14B; widths
8 / 16 / 32 from full to latent resolution (``base_dim`` 8, ``dim_mult`` (1, 2, 4): narrow where
the frames are large, so a CPU step is cheap; a first run with 16 / 32 / 32 made 150 VAE steps in
12 minutes on the loaded training machine and was discarded, see the model card). The
transformer: 6 blocks, 4 heads x 48 (width 192, as the CogVideoX toy), FFN 768, patch (1, 2, 2)
-> 3 x 8 x 8 = 192 video tokens, 3D RoPE, cross-attention to a fixed null prompt of shape
``(1, 1, 16)``. The scheduler: the published Wan UniPC settings (flow prediction, flow sigmas,
``flow_shift`` 3.0 as Wan2.1-I2V-480P's converter writes). ``latents_mean`` / ``latents_std``
are set per channel from the training latents (as Wan publishes per-channel statistics).
"""

from __future__ import annotations

from pathlib import Path

import torch

from stillguard.toy import folder

HEIGHT, WIDTH, NUM_FRAMES = 64, 64, 9
TEXT_LEN, TEXT_DIM = 1, 16
Z_DIM = 16
#: default number of UniPC steps written to ``stillguard.json``
DEFAULT_STEPS = 10
FLOW_SHIFT = 3.0

VAE_CONFIG = dict(
    base_dim=8,
    z_dim=Z_DIM,
    dim_mult=[1, 2, 4],
    num_res_blocks=1,
    attn_scales=[],
    temperal_downsample=[True, True],
    dropout=0.0,
    scale_factor_spatial=4,
    scale_factor_temporal=4,
    latents_mean=[0.0] * Z_DIM,
    latents_std=[1.0] * Z_DIM,
)

TRANSFORMER_CONFIG = dict(
    patch_size=(1, 2, 2),
    num_attention_heads=4,
    attention_head_dim=48,
    in_channels=2 * Z_DIM + 4,
    out_channels=Z_DIM,
    text_dim=TEXT_DIM,
    freq_dim=256,
    ffn_dim=768,
    num_layers=6,
    cross_attn_norm=True,
    qk_norm="rms_norm_across_heads",
    eps=1e-6,
    rope_max_seq_len=1024,
)

#: the published Wan scheduler switches (diffusers' convert_wan_to_diffusers.py)
SCHEDULER_CONFIG = dict(
    prediction_type="flow_prediction",
    use_flow_sigmas=True,
    num_train_timesteps=1000,
    flow_shift=FLOW_SHIFT,
)


def weights_dir() -> Path:
    """The folder of the shipped Wan toy pipeline inside the installed package."""
    return Path(__file__).resolve().parent / "weights_wan"


def build_vae():
    from diffusers import AutoencoderKLWan

    return AutoencoderKLWan(**VAE_CONFIG)


def build_transformer():
    from diffusers import WanTransformer3DModel

    return WanTransformer3DModel(**TRANSFORMER_CONFIG)


def build_scheduler():
    from diffusers import UniPCMultistepScheduler

    return UniPCMultistepScheduler(**SCHEDULER_CONFIG)


def null_prompt() -> torch.Tensor:
    """The fixed null prompt the toy is trained with. Shape ``(1, TEXT_LEN, TEXT_DIM)``."""
    return torch.zeros(1, TEXT_LEN, TEXT_DIM)


def shift_sigma(sigma: torch.Tensor, shift: float = FLOW_SHIFT) -> torch.Tensor:
    """The scheduler's shift ``s·σ / (1 + (s − 1)·σ)`` (training draws σ where sampling visits)."""
    return shift * sigma / (1 + (shift - 1) * sigma)


def frame_mask(batch: int, latent_frames: int, device=None) -> torch.Tensor:
    """The pipeline's 4-channel frame mask in the transformer layout ``(B, 4, F_lat, h, w)``:
    all four sub-frames of latent frame 0 are the photo (1), every later frame is free (0)."""
    h, w = HEIGHT // 4, WIDTH // 4
    m = torch.zeros(batch, 4, latent_frames, h, w, device=device)
    m[:, :, 0] = 1
    return m


def assemble(vae, transformer):
    """The diffusers pipeline made of the given trained VAE and transformer."""
    from diffusers import WanImageToVideoPipeline

    return WanImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=vae,
        transformer=transformer,
        scheduler=build_scheduler(),
    )


def export(vae, transformer, path: str | Path, *, num_inference_steps: int = DEFAULT_STEPS) -> Path:
    """Write the shipped pipeline folder: fp16 safetensors, null prompt and generation defaults
    (``stillguard.json`` names the ``wan-i2v`` adapter; see :mod:`.folder`)."""
    defaults = {"adapter": "wan-i2v", "height": HEIGHT, "width": WIDTH, "num_frames": NUM_FRAMES}
    defaults |= {"num_inference_steps": num_inference_steps, "guidance_scale": 1.0}
    null = null_prompt().contiguous()
    prompt = {"prompt_embeds": null, "negative_prompt_embeds": null.clone()}
    return folder.export(
        assemble, vae, transformer, path, prompt, defaults, what="Wan toy pipeline"
    )


def load_pipeline(path: str | Path | None = None, *, dtype: torch.dtype = torch.float32):
    """Load a Wan toy pipeline folder (default: the shipped one) with plain diffusers.

    Returns:
        ``(pipeline, prompt_embeds, defaults)``; ``prompt_embeds`` has shape ``(1, 1, 16)``.
    """
    from diffusers import WanImageToVideoPipeline

    path = Path(path) if path is not None else weights_dir()
    return folder.load(WanImageToVideoPipeline, path, dtype)
