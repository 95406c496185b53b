"""Shared pieces of the tiny-build probes (see tiny_new_targets.py): photo, PIL view, gradient
norm, attention-processor listing, the tiny Wan VAE, and the torchvision stand-in Cosmos needs."""

from __future__ import annotations

import re
from collections import Counter

import torch
import torch.nn.functional as F

SIZE = 32  # photo side (pixels)


def processors(model: torch.nn.Module) -> dict[str, str]:
    """Attention-module name pattern (block indices as *) -> processor class name."""
    seen: Counter = Counter()
    for name, module in model.named_modules():
        proc = getattr(module, "processor", None)
        if proc is not None and not isinstance(proc, torch.nn.Module):
            seen[(re.sub(r"\.\d+\.", ".*.", name), type(proc).__name__)] += 1
    return {f"{k[0]} (x{n})": k[1] for k, n in seen.items()}


def photo(seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(1, 3, SIZE, SIZE, generator=g)


def to_pil(x: torch.Tensor):
    import PIL.Image

    arr = (x[0].permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()
    return PIL.Image.fromarray(arr)


def grad_norm(loss_fn, x: torch.Tensor) -> float:
    x = x.clone().requires_grad_(True)
    loss_fn(x).backward()
    return float(x.grad.abs().sum())


def wan_vae():
    from diffusers import AutoencoderKLWan

    torch.manual_seed(0)
    return AutoencoderKLWan(
        base_dim=3,
        z_dim=16,
        dim_mult=[1, 1, 1, 1],
        num_res_blocks=1,
        temperal_downsample=[False, True, True],
    )


def torchvision_shim() -> None:
    """Cosmos' concat_padding_mask resizes a mask with torchvision, absent here: a nearest-neighbour
    stand-in (torch interpolate) is put where the module looks it up."""
    import types

    import diffusers.models.transformers.transformer_cosmos as tc

    if getattr(tc, "transforms", None) is not None:
        return
    fn = types.SimpleNamespace(
        resize=lambda t, size, interpolation=None: F.interpolate(
            t, size=tuple(size), mode="nearest"
        )
    )
    tc.transforms = types.SimpleNamespace(
        functional=fn, InterpolationMode=types.SimpleNamespace(NEAREST="nearest")
    )


def two_roads(parts, encoder: str) -> dict:
    """The losses of a photo that reaches the denoiser by the VAE latent and by an image encoder:
    ``parts(x, vae_on, enc_on)`` detaches the road switched off."""
    return {
        "both roads": parts,
        "vae latent concat only": lambda x: parts(x, True, False),
        f"{encoder} tokens only": lambda x: parts(x, False, True),
    }
