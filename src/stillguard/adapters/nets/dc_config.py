"""Configuration folders of the DynamiCrafter adapter (no weights) and the tiny test config.

A folder holds ``model_index.json``, one ``<component>/config.json`` per part of the official
``LatentVisualDiffusion`` (``unet``, ``vae``, ``clip``, ``resampler``, ``schedule``: the official
YAML ``params`` names, plus ``"_source"``), ``stillguard.json`` (generation defaults) and, once
saved with weights, ``model.safetensors`` (official keys) and ``prompt_embeds.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import ModelError

COMPONENTS = ("unet", "vae", "clip", "resampler", "schedule")
WEIGHTS_FILE = "model.safetensors"

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


def read_config(folder: Path) -> dict[str, Any]:
    """The component configs of ``folder`` (``"_source"`` keys dropped).

    Raises:
        ModelError: a component config is missing or unreadable.
    """
    out: dict[str, Any] = {}
    for name in COMPONENTS:
        file = folder / name / "config.json"
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise ModelError(
                f"{folder} is not a DynamiCrafter folder: cannot read {name}/config.json ({err}); "
                "pass a folder written by save_pretrained or a shipped configuration"
            ) from err
        out[name] = {k: v for k, v in data.items() if not k.startswith("_")}
    return out


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """Write ``model_index.json`` and the component configs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {"_class_name": "DynamiCrafter", "_stillguard": "own implementation, see adapters/nets"}
    index.update({name: ["stillguard", name] for name in COMPONENTS})
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    for name in COMPONENTS:
        (folder / name).mkdir(exist_ok=True)
        text = json.dumps(config[name], indent=2, sort_keys=True) + "\n"
        (folder / name / "config.json").write_text(text)
