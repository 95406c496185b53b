"""Open-Sora 1.2's rectified-flow sampler (``RFLOW``), differentiable, with the v1.2 defaults.

Source: hpcaitech/Open-Sora tag v1.2.0, ``opensora/schedulers/rf/__init__.py`` (``RFLOW.sample``)
and ``rf/rectified_flow.py`` (``RFlowScheduler.add_noise``, ``timestep_transform``); inference
settings from ``configs/opensora-v1-2/inference/sample.py``: 30 steps, ``cfg_scale`` 7.0,
``use_timestep_transform=True``. Written from the definitions; no code copied.

Units: timesteps ``t`` in [0, 1000], 1000 = pure noise; ``x_t = (1 − t/1000)·x0 + (t/1000)·ε``;
the model predicts the velocity ``v = x0 − ε``; an Euler step is ``z += v · (t_i − t_{i+1})/1000``.
The timestep transform bends the uniform grid toward noise for large videos:
``t' = r·t / (1 + (r − 1)·t)`` (t in [0, 1]) with ``r = sqrt(H·W / 512²) · sqrt(n)``,
``n = num_frames // 17 · 5`` (1 for images). For ``2 ≤ num_frames < 17`` the official formula
gives ``n = 0`` and collapses every timestep to 0; we use ``n ≥ 1`` there (documented deviation,
the official configs never sample such lengths).

Image conditioning (``mask_strategy`` "0", the I2V default): latent frame 0 holds the reference
latent and the mask is 0 there, so ``x_mask`` is False on it (adaLN of timestep 0) and it is put
back after every step; no noise is ever added to it (edit ratio 0).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor


@dataclass
class RFlowConfig:
    """``RFLOW`` settings (defaults: the v1.2 inference config)."""

    num_sampling_steps: int = 30
    num_timesteps: int = 1000
    cfg_scale: float = 7.0
    use_timestep_transform: bool = True
    use_discrete_timesteps: bool = False
    transform_scale: float = 1.0

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> RFlowConfig:
        return cls(**{k: v for k, v in data.items() if k in {f.name for f in fields(cls)}})

    def to_dict(self) -> dict[str, Any]:
        return {"_class_name": "RFLOW", **asdict(self)}


def timestep_transform(
    t: Tensor,
    height: int,
    width: int,
    num_frames: int,
    cfg: RFlowConfig,
    dtype: torch.dtype = torch.float32,
) -> Tensor:
    """Resolution- and length-aware timestep shift (see the module docstring). ``t`` in model units.

    The ratio is computed from size tensors in ``dtype``, the model's dtype, as v1.2 builds them
    (``prepare_multi_resolution_info``), so the rounding matches the official sampler's.
    """
    n = cfg.num_timesteps
    res = torch.tensor(height, dtype=dtype) * torch.tensor(width, dtype=dtype)
    ratio_space = (res / (512 * 512)).sqrt()
    frames = torch.tensor(num_frames, dtype=dtype)
    frames = torch.ones_like(frames) if num_frames == 1 else (frames // 17 * 5).clamp_min(1)
    ratio = (ratio_space * frames.sqrt() * cfg.transform_scale).to(t.device)
    u = t / n
    return ratio * u / (1 + (ratio - 1) * u) * n


def add_noise(x0: Tensor, noise: Tensor, t: Tensor, num_timesteps: int = 1000) -> Tensor:
    """``RFlowScheduler.add_noise``: ``(1 − t/T)·x0 + (t/T)·noise``; ``t (B,)`` broadcast."""
    s = (t.float() / num_timesteps).view(-1, *([1] * (x0.ndim - 1))).to(x0.dtype)
    return (1 - s) * x0 + s * noise


def sampling_timesteps(
    steps: int,
    height: int,
    width: int,
    num_frames: int,
    cfg: RFlowConfig,
    device: Any = None,
    dtype: torch.dtype = torch.float32,
) -> list[Tensor]:
    """The ``steps`` timesteps of ``RFLOW.sample``, each a 0-d float tensor, decreasing."""
    ts = [(1.0 - i / steps) * cfg.num_timesteps for i in range(steps)]
    if cfg.use_discrete_timesteps:
        ts = [float(round(t)) for t in ts]
    out = [torch.tensor(t, device=device) for t in ts]
    if cfg.use_timestep_transform:
        out = [timestep_transform(t, height, width, num_frames, cfg, dtype) for t in out]
    return out


def sample(
    velocity: Callable[[Tensor, Tensor, Tensor | None], Tensor],
    z: Tensor,
    timesteps: list[Tensor],
    cond_frames: int = 1,
    num_timesteps: int = 1000,
    generator: torch.Generator | None = None,
    shared_renoise: bool = False,
) -> Tensor:
    """Euler integration of the flow from noise, conditioning frames held fixed (differentiable).

    Follows ``RFLOW.sample`` with a reference on the first ``cond_frames`` frames (mask 0, the
    others 1) step by step: a frame *moves* while ``mask·T >= t``; a frame that starts moving
    later than the first step is first re-noised to level ``t`` (fresh noise from ``generator``).
    This matters because the transformed first timestep can round just above ``T`` (e.g.
    1000.0001 in float32): then nothing moves at step 0 and the generated frames are re-noised at
    step 1, exactly as the official sampler does (reproduced, not fixed).

    Args:
        velocity: ``(z (B,C,T,h,w), t (B,), x_mask (B,T) bool or None) -> v`` (CFG applied).
        z: start latent ``(B, C, T, h, w)``: noise, with the reference latent already written into
            its first ``cond_frames`` frames.
        timesteps: from :func:`sampling_timesteps`.
        cond_frames: leading latent frames that are conditioning; 0 for text-to-video.
        generator: draws the re-noising noise (only when needed).
        shared_renoise: draw the re-noising noise for one video and use it for every batch item
            (the official sampler draws it for the whole batch): with a generator seeded afresh
            for each call, a batch then moves each video exactly as a call of its own would.

    Returns:
        the final latent, same shape as ``z``.
    """
    b, _, frames = z.shape[:3]
    mask = torch.ones(b, frames, device=z.device)
    mask[:, :cond_frames] = 0
    noised = mask == 1
    for i, t in enumerate(timesteps):
        tb = t.reshape(1).expand(b).to(z.device)
        moving = mask * num_timesteps >= tb[:, None]
        x0 = z
        if cond_frames:
            renoise = moving & ~noised
            if bool(renoise.any()):
                shape = (1, *z.shape[1:]) if shared_renoise else z.shape
                eps = torch.randn(
                    shape,
                    generator=generator,
                    device=z.device if generator is None else generator.device,
                )
                fresh = add_noise(x0, eps.to(z).expand_as(z), tb, num_timesteps)
                z = torch.where(renoise[:, None, :, None, None], fresh, x0)
            noised = moving
        v = velocity(z, tb, moving if cond_frames else None)
        dt = (timesteps[i] - timesteps[i + 1]) if i + 1 < len(timesteps) else timesteps[i]
        z = z + v * (dt / num_timesteps).to(z.dtype)
        if cond_frames:
            z = torch.where(moving[:, None, :, None, None], z, x0)
    return z
