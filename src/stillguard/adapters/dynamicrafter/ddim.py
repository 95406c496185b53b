"""DynamiCrafter's DDIM sampler, differentiable (no ``torch.no_grad`` inside).

Source: Doubiiu/DynamiCrafter ``lvdm/models/samplers/ddim.py`` (``DDIMSampler.make_schedule``,
``p_sample_ddim``) and ``lvdm/models/utils_diffusion.py`` (``make_ddim_timesteps``,
``make_ddim_sampling_parameters``, ``rescale_noise_cfg``). Per step, with ``a_t``/``a_prev`` the
cumulative alphas of the current and next DDIM timestep (``a_prev = alphas_cumprod[0]`` at the end):

* classifier-free guidance ``out = u + g·(c − u)``, then, if ``guidance_rescale > 0``, the
  std-matching rescale of arXiv 2305.08891 §3.4 against the conditional output;
* v-prediction: ``eps = √a_t·v + √(1−a_t)·x``, ``x0 = √a_t·x − √(1−a_t)·v``; eps-prediction:
  ``x0 = (x − √(1−a_t)·eps)/√a_t``;
* dynamic rescale (1024/512 models): ``x0 *= scale_arr[t_prev] / scale_arr[t]``;
* ``x_prev = √a_prev·x0 + √(1 − a_prev − σ²)·eps + σ·z``, ``σ = η·√((1−a_prev)/(1−a_t)·(1−a_t/a_prev))``.

Timestep spacings: ``uniform`` (``range(0, 1000, 1000//S) + 1``) and ``uniform_trailing``
(``round(arange(1000, 0, −1000/S))`` reversed, minus 1), as ``make_ddim_timesteps``.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from torch import Tensor

from ...errors import InputError

SPACINGS = ("uniform", "uniform_trailing")


def ddim_timesteps(steps: int, spacing: str, n: int = 1000) -> np.ndarray:
    """The DDIM timesteps in increasing order. Shape ``(steps,)``, int64."""
    if steps < 1:
        raise InputError(f"num_inference_steps must be >= 1, got {steps}")
    if spacing == "uniform":
        return np.asarray(list(range(0, n, n // steps))) + 1
    if spacing == "uniform_trailing":
        return np.flip(np.round(np.arange(n, 0, -n / steps))).astype(np.int64) - 1
    raise InputError(f"unknown timestep spacing {spacing!r}: use one of {', '.join(SPACINGS)}")


def rescale_cfg(out: Tensor, cond: Tensor, factor: float) -> Tensor:
    """Mix ``out`` with ``out`` rescaled to the per-sample std of ``cond`` (weight ``factor``)."""
    dims = list(range(1, cond.ndim))
    rescaled = out * (cond.std(dim=dims, keepdim=True) / out.std(dim=dims, keepdim=True))
    return factor * rescaled + (1 - factor) * out


def sample(
    model_fn: Callable[[Tensor, Tensor], tuple[Tensor, Tensor | None]],
    x: Tensor,
    buffers: dict[str, Tensor],
    *,
    steps: int,
    spacing: str,
    parameterization: str,
    guidance_scale: float,
    guidance_rescale: float,
    eta: float,
    generator: torch.Generator | None,
) -> Tensor:
    """Run the DDIM loop from ``x`` (pure noise). ``model_fn(x, t) -> (cond_out, uncond_out|None)``.

    ``buffers`` holds ``alphas_cumprod`` (and ``scale_arr`` for dynamic rescale). ``eta > 0`` needs
    ``generator``. Shape: ``x`` ``(B, F, C, h, w)`` -> same.
    """
    if eta > 0 and generator is None:
        raise InputError("DDIM with eta > 0 draws noise: pass a torch.Generator")
    ac = buffers["alphas_cumprod"].detach().float().cpu()
    ts = ddim_timesteps(steps, spacing, ac.shape[0])
    alphas = ac[ts]
    prev = torch.cat([ac[:1], ac[ts[:-1]]])
    sigmas = eta * ((1 - prev) / (1 - alphas) * (1 - alphas / prev)).sqrt()
    scale = buffers.get("scale_arr")
    if scale is not None:
        s = scale.detach().float().cpu()[ts]
        s_prev = torch.cat([s[:1], s[:-1]])
    dtype = x.dtype
    for index in reversed(range(len(ts))):
        t = torch.full((x.shape[0],), int(ts[index]), device=x.device, dtype=torch.long)
        cond, uncond = model_fn(x, t)
        out = cond
        if uncond is not None:
            out = uncond + guidance_scale * (cond - uncond)
            if guidance_rescale > 0:
                out = rescale_cfg(out, cond, guidance_rescale)
        a_t, a_prev, sigma = (float(v[index]) for v in (alphas, prev, sigmas))
        if parameterization == "v":
            eps = a_t**0.5 * out + (1 - a_t) ** 0.5 * x
            x0 = a_t**0.5 * x - (1 - a_t) ** 0.5 * out
        else:
            eps = out
            x0 = (x - (1 - a_t) ** 0.5 * eps) / a_t**0.5
        if scale is not None:
            x0 = x0 * float(s_prev[index] / s[index])
        x = a_prev**0.5 * x0 + max(1 - a_prev - sigma**2, 0.0) ** 0.5 * eps
        if sigma > 0:
            noise = torch.randn(x.shape, generator=generator, device=generator.device)
            x = x + sigma * noise.to(x.device, dtype)
    return x.to(dtype)
