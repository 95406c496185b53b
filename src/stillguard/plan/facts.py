"""The facts of a built target the memory ladder reasons with (working size, size steps, layers)."""

from __future__ import annotations

from typing import Any


def _spatial_patch(patch: Any) -> int:
    """A denoiser config's spatial patch size: an int (CogVideoX ``2``), or the last entry of a
    ``(t, h, w)`` sequence (Wan ``[1, 2, 2]``, STDiT3 ``(1, 2, 2)``); 1 when absent."""
    if isinstance(patch, (list, tuple)):
        patch = patch[-1] if patch else 1
    return int(patch or 1)


def _unet_levels(unet: Any) -> int:
    """Resolution levels of a U-Net: diffusers' ``down_blocks``, or the LVDM ``channel_mult`` of
    DynamiCrafter's ``DCUNet`` (its ``config`` is a plain dict); 1 when neither is there."""
    if hasattr(unet, "down_blocks"):
        return len(unet.down_blocks)
    cfg = getattr(unet, "config", None)
    mult = cfg.get("channel_mult") if isinstance(cfg, dict) else getattr(cfg, "channel_mult", None)
    return len(mult) if mult else 1


def ladder_facts(adapter: Any, method: Any) -> dict[str, int]:
    """What the memory ladder needs of a built adapter: working size, frame counts, the size steps
    they take (VAE and patch factors) and the number of attention layers a method attacks."""
    pipe = getattr(adapter, "pipe", None)
    denoiser = getattr(pipe, "transformer", None) or getattr(pipe, "unet", None)
    # diffusers names the VAE factors vae_scale_factor(_spatial/_temporal), LTX
    # vae_(spatial/temporal)_compression_ratio; 8x spatial, no temporal when none is there
    spatial = int(
        getattr(pipe, "vae_scale_factor", 0)
        or getattr(pipe, "vae_scale_factor_spatial", 0)
        or getattr(pipe, "vae_spatial_compression_ratio", 0)
        or 8
    )
    temporal = int(
        getattr(pipe, "vae_scale_factor_temporal", 0)
        or getattr(pipe, "vae_temporal_compression_ratio", 0)
        or 1
    )
    if getattr(pipe, "unet", None) is not None:  # a U-Net halves the latent at each down block
        res_step = spatial * 2 ** (_unet_levels(pipe.unet) - 1)
    else:
        patch = getattr(getattr(denoiser, "config", None), "patch_size", 1)
        res_step = spatial * _spatial_patch(patch)
    facts = {
        "height": int(adapter.height),
        "width": int(adapter.width),
        "num_frames": int(adapter.num_frames),
        "opt_num_frames": int(getattr(adapter, "opt_num_frames", adapter.num_frames)),
        "frame_step": temporal,
        "res_step": int(res_step),
    }
    if hasattr(method, "layers"):
        from ..methods.base import attention_kind

        kind = attention_kind(adapter, getattr(method, "attention", "auto"))
        facts["attention_layers"] = len(adapter.layer_names(kind))
    if hasattr(method, "max_queries"):
        facts["max_queries"] = int(method.max_queries)
    return facts
