"""Sampling helpers of the Wan-derived adapters (Wan 2.1/2.2, SkyReels-V2): the UniPC flow
scheduler their pipelines step, its flow shift, training timesteps and a differentiable rollout.

The pipelines step ``UniPCMultistepScheduler`` (order 2, ``flow_prediction`` on flow sigmas) with
the checkpoint's ``flow_shift`` ``s``; a model author may ask for another shift than the converted
folder stores (:func:`shifted_scheduler`). Training timesteps are ``t = 1000·σ'`` with
``σ' = sσ/(1+(s−1)σ)``, ``σ ~ U(0,1)`` (the sampler's own spacing, made continuous;
:func:`flow_shift_timesteps`). :func:`unipc_rollout` steps a private copy of the scheduler, so
the pipeline's own is never touched.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor

from .wan_conditioning import swap_fc


def shifted_scheduler(pipe: Any, flow_shift: float | None) -> Any:
    """Set the pipeline's UniPC scheduler to ``flow_shift`` (``None``: keep the folder's) and
    return a private copy of it for :func:`unipc_rollout`."""
    from diffusers import UniPCMultistepScheduler

    if flow_shift is not None:  # the model authors' shift, when the folder's differs
        cfg = {**pipe.scheduler.config, "flow_shift": float(flow_shift)}
        pipe.scheduler = UniPCMultistepScheduler.from_config(cfg)
    return UniPCMultistepScheduler.from_config(pipe.scheduler.config)


def flow_shift_timesteps(
    scheduler: Any, batch: int, generator: torch.Generator, device: torch.device
) -> Tensor:
    """``t = 1000·σ'``, ``σ' = sσ/(1+(s−1)σ)``, ``σ ~ U(0,1)`` (at least 1e-3), ``s`` = the
    scheduler's ``flow_shift``. Shape: ``(batch,)`` on ``device``."""
    s = float(scheduler.config.get("flow_shift", 1.0))
    sigma = torch.rand(batch, generator=generator, device=generator.device).clamp_min(1e-3)
    return (1000 * s * sigma / (1 + (s - 1) * sigma)).to(device)


def unipc_rollout(
    scheduler: Any,
    steps: int,
    latents: Tensor,
    velocity: Callable[[Tensor, Tensor], Tensor],
    dtype: torch.dtype,
    *,
    stale_first_sample: bool = False,
) -> Tensor:
    """``steps`` differentiable UniPC steps of ``scheduler`` (a private copy) from ``latents``.

    ``velocity(latents, t)`` is the guided model output at the scheduler's timestep ``t`` (a
    0-d int64 tensor). ``stale_first_sample`` reproduces SkyReels-V2's diffusion-forcing pipeline
    (diffusers 0.42.1), which steps each frame with its own scheduler on a *view* of its latents
    and then writes the result into that view: after the first step (the only one without a
    corrector, whose ``last_sample`` is the caller's tensor itself) the scheduler's
    ``last_sample`` holds the stepped sample, so the corrector of the second step sees it instead
    of the first sample. Shape: latents and velocity ``(B, F_lat, C, h, w)``.
    """
    scheduler.set_timesteps(steps, device=latents.device)
    lat = latents
    for i, t in enumerate(scheduler.timesteps):
        v = velocity(lat, t)
        new = scheduler.step(swap_fc(v), t, swap_fc(lat), return_dict=False)[0]
        if stale_first_sample and i == 0:
            scheduler.last_sample = new
        lat = swap_fc(new).to(dtype)
    return lat
