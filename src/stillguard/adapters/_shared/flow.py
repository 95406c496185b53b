"""Flow-matching helpers shared by the flow-matching families (``ltx-i2v``, ``ltx2-i2v``,
``hunyuan-i2v``, ``hunyuan15-i2v``, ``sana-video-i2v``, ``kandinsky5-i2v``, ``skyreels-v2-i2v``).

The LTX and Hunyuan families use diffusers' ``FlowMatchEulerDiscreteScheduler`` (SANA-Video a DPM solver on the
same flow sigmas): ``x_σ = (1 − σ)·z0 + σ·ε`` with the velocity ``v = ε − z0`` as the model
output, and ``t = 1000·σ``. :func:`flow_timesteps` draws
training timesteps shifted as the sampler shifts its grid (:func:`training_sigmas`,
:func:`shift_mu`); :func:`euler_scheduler` is a private scheduler for a differentiable rollout;
:func:`keyed_randn` draws noise the adapter contract passes no generator for, keyed by the inputs.
"""

from __future__ import annotations

import hashlib
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake


def keyed_generator(*tensors: Tensor) -> torch.Generator:
    """A CPU generator seeded from the values of ``tensors`` (same values, same draws).

    Used where the pipeline draws random numbers that the adapter contract passes no generator
    for: keyed by the image (and the noise video, which comes from the run's generator), every PGD
    step - a new image - gets a fresh draw, and a run stays reproducible for its seed.
    """
    if any(t.device.type == "meta" or is_fake(t) for t in tensors):
        return torch.Generator().manual_seed(0)  # sizing runs (meta / fake tensors) have no values
    h = hashlib.sha256()
    for t in tensors:
        h.update(t.detach().to("cpu", torch.float32).contiguous().numpy().tobytes())
    return torch.Generator().manual_seed(int.from_bytes(h.digest()[:7], "little"))


def keyed_randn(shape: tuple[int, ...] | torch.Size, *tensors: Tensor) -> Tensor:
    """Standard normal draws of ``shape`` ``(B, ...)`` on the CPU, item ``b`` drawn from
    :func:`keyed_generator` of the ``b``-th slices of ``tensors``.

    Keyed per item, a batch of B images gets exactly the draws of B separate calls (so a loss on a
    batch is the sum of the per-image losses); for B = 1 this is ``torch.randn(shape,
    generator=keyed_generator(*tensors))``, byte for byte. A tensor whose leading axis is not B
    (a scalar timestep) keys every item whole.
    """
    batch = int(shape[0])

    def item(t: Tensor, b: int) -> Tensor:
        return t[b : b + 1] if t.ndim and t.shape[0] == batch else t

    one = (1, *shape[1:])
    draws = [
        torch.randn(one, generator=keyed_generator(*(item(t, b) for t in tensors)))
        for b in range(batch)
    ]
    return draws[0] if batch == 1 else torch.cat(draws)


def training_sigmas(scheduler: Any, u: Tensor, seq_len: int) -> Tensor:
    """Uniform ``u`` in (0, 1) -> noise levels σ, shifted as the scheduler shifts its sampling
    schedule (resolution-dependent ``μ`` for dynamic shifting, else the static ``shift``).

    The terminal stretch (``shift_terminal``) is left out: it only reshapes the sampler's grid.
    The static shift is ``shift`` (``FlowMatchEulerDiscreteScheduler``) or, for the multistep
    solvers on flow sigmas (``DPMSolverMultistepScheduler``, ``UniPCMultistepScheduler``), which
    shift their grid by the same formula, ``flow_shift``.
    """
    cfg = scheduler.config
    if cfg.get("use_dynamic_shifting"):
        mu = shift_mu(scheduler, seq_len)
        return float(np.exp(mu)) / (float(np.exp(mu)) + (1 / u - 1))
    s = float(cfg.get("shift", cfg.get("flow_shift", 1.0)))
    return s * u / (1 + (s - 1) * u)


def flow_timesteps(
    scheduler: Any, batch: int, generator: torch.Generator, seq_len: int, device: torch.device
) -> Tensor:
    """Training timesteps ``t = 1000·σ``, shape ``(batch,)`` on ``device``: σ is
    :func:`training_sigmas` (in float64) of ``U(0.001, 0.999)`` drawn from ``generator``."""
    u = torch.rand(batch, generator=generator, device=generator.device) * 0.998 + 0.001
    return (1000 * training_sigmas(scheduler, u.double(), seq_len)).float().to(device)


def euler_scheduler(
    scheduler: Any, sigmas: np.ndarray, device: torch.device, mu: float | None = None
) -> Any:
    """A fresh ``FlowMatchEulerDiscreteScheduler`` with the pipeline scheduler's config, set to the
    grid ``sigmas`` (``mu``: the resolution-dependent shift of dynamic shifting), for a
    differentiable rollout that leaves the pipeline's own scheduler untouched."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    sch = FlowMatchEulerDiscreteScheduler.from_config(scheduler.config)
    sch.set_timesteps(sigmas=sigmas, mu=mu, device=device)
    return sch


def shift_mu(scheduler: Any, seq_len: int) -> float:
    """The pipeline's ``calculate_shift`` for a video of ``seq_len`` tokens."""
    cfg = scheduler.config
    base_len, max_len = cfg.get("base_image_seq_len", 256), cfg.get("max_image_seq_len", 4096)
    base, top = cfg.get("base_shift", 0.5), cfg.get("max_shift", 1.15)
    m = (top - base) / (max_len - base_len)
    return seq_len * m + base - m * base_len
