"""Building blocks of the ``ltx-i2v`` adapter: tiny and config-only pipelines, flow-matching helpers.

The flow-matching helpers (:func:`keyed_generator`, :func:`keyed_randn`, :func:`training_sigmas`,
:func:`flow_timesteps`, :func:`euler_scheduler`, :func:`build_from_config`) are shared with ``hunyuan-i2v``: both pipelines use diffusers'
``FlowMatchEulerDiscreteScheduler``, ``x_σ = (1 − σ)·z0 + σ·ε`` with the velocity ``v = ε − z0``
as the model output, and ``t = 1000·σ``.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

from ..errors import ModelError

#: the working size of the tiny model (not a square on purpose: catches h/w mix-ups)
TINY_HEIGHT, TINY_WIDTH, TINY_FRAMES = 32, 64, 9
TINY_TEXT_TOKENS, TINY_TEXT_DIM = 6, 32

# After diffusers' fast test (tests/pipelines/ltx/test_ltx_image2video.py) with 2 blocks instead of 1
# (Anti-I2V needs a shallow and a deep block). Patch size 1 and QK-norm across heads as the real model.
LTX_TINY_TRANSFORMER = dict(
    in_channels=8, out_channels=8, patch_size=1, patch_size_t=1, num_attention_heads=4,
    attention_head_dim=8, cross_attention_dim=32, num_layers=2, caption_channels=TINY_TEXT_DIM,
)  # fmt: skip
# 4x spatial and 4x temporal compression (the real VAE: 32x and 8x), causal encoder as the real one
LTX_TINY_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=8, block_out_channels=(8, 8, 8, 8),
    decoder_block_out_channels=(8, 8, 8, 8), layers_per_block=(1, 1, 1, 1, 1),
    decoder_layers_per_block=(1, 1, 1, 1, 1), spatio_temporal_scaling=(True, True, False, False),
    decoder_spatio_temporal_scaling=(True, True, False, False),
    decoder_inject_noise=(False, False, False, False, False), upsample_residual=(False,) * 4,
    upsample_factor=(1,) * 4, timestep_conditioning=False, patch_size=1, patch_size_t=1,
    encoder_causal=True, decoder_causal=False,
)  # fmt: skip
#: the values of Lightricks/LTX-Video's scheduler (diffusers scripts/convert_ltx_to_diffusers.py)
LTX_SCHEDULER = dict(
    use_dynamic_shifting=True, base_shift=0.95, max_shift=2.05, base_image_seq_len=1024,
    max_image_seq_len=4096, shift_terminal=0.1,
)  # fmt: skip


def tiny_ltx_pipe(seed: int) -> tuple[Any, Tensor, Tensor]:
    """A random ``LTXImageToVideoPipeline`` (no T5), prompt embeds ``(1, 6, 32)`` and their mask.

    The last two text tokens are padding (mask 0), so the text-mask path is exercised.
    """
    from diffusers import (
        AutoencoderKLLTXVideo,
        FlowMatchEulerDiscreteScheduler,
        LTXImageToVideoPipeline,
        LTXVideoTransformer3DModel,
    )

    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        transformer = LTXVideoTransformer3DModel(**LTX_TINY_TRANSFORMER)
        vae = AutoencoderKLLTXVideo(**LTX_TINY_VAE)
    vae.use_framewise_encoding = vae.use_framewise_decoding = False
    pipe = LTXImageToVideoPipeline(
        scheduler=FlowMatchEulerDiscreteScheduler(**LTX_SCHEDULER),
        vae=vae,
        text_encoder=None,
        tokenizer=None,
        transformer=transformer,
    )
    g = torch.Generator().manual_seed(seed)
    embeds = torch.randn(1, TINY_TEXT_TOKENS, TINY_TEXT_DIM, generator=g)
    mask = torch.ones(1, TINY_TEXT_TOKENS, dtype=torch.long)
    mask[:, -2:] = 0
    return pipe, embeds, mask


def read_json(file: Path) -> dict[str, Any]:
    try:
        return json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(
            f"cannot read {file}: {err}; is this a config-only pipeline folder?"
        ) from err


def build_from_config(
    folder: str | Path,
    pipeline_cls: Any,
    parts: dict[str, Any],
    absent: tuple[str, ...],
    device: str | torch.device,
    dtype: torch.dtype,
) -> tuple[Any, dict[str, Any]]:
    """A pipeline from a config-only folder: ``parts`` maps component name -> diffusers class.

    Weights are random (``torch.manual_seed`` state) or, on ``device="meta"``, not allocated at all.
    Keys starting with ``_`` (``_source``, ``_class_name``) are ignored by diffusers. The components
    named in ``absent`` (text encoders, tokenizers) are ``None``. Returns the pipeline and the
    folder's ``stillguard.json``.
    """
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(f"{folder} has no model_index.json: pass a config-only pipeline folder")
    built: dict[str, Any] = {}
    for name, cls in parts.items():
        sub = folder / name
        file = sub / ("scheduler_config.json" if name == "scheduler" else "config.json")
        config = read_json(file)
        if name == "scheduler":
            built[name] = cls.from_config(config)
            continue
        with torch.device(device):
            model = cls.from_config(config)
            built[name] = model if dtype == torch.float32 else model.to(dtype)
    settings = (
        read_json(folder / "stillguard.json") if (folder / "stillguard.json").is_file() else {}
    )
    return pipeline_cls(**built, **dict.fromkeys(absent)), settings


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
    """
    cfg = scheduler.config
    if cfg.get("use_dynamic_shifting"):
        mu = shift_mu(scheduler, seq_len)
        return float(np.exp(mu)) / (float(np.exp(mu)) + (1 / u - 1))
    s = float(cfg.get("shift", 1.0))
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


def flow_pipeline_from_config(
    folder: str | Path,
    pipeline_cls: Any,
    transformer_cls: Any,
    vae_cls: Any,
    absent: tuple[str, ...],
    device: str | torch.device,
    dtype: torch.dtype,
    options: dict[str, Any],
) -> tuple[Any, dict[str, Any]]:
    """:func:`build_from_config` for the flow-matching video pipelines (LTX-Video, HunyuanVideo):
    transformer, VAE and ``FlowMatchEulerDiscreteScheduler``; ``options`` override the folder's
    ``stillguard.json`` in the returned settings."""
    from diffusers import FlowMatchEulerDiscreteScheduler

    parts = {
        "transformer": transformer_cls,
        "vae": vae_cls,
        "scheduler": FlowMatchEulerDiscreteScheduler,
    }
    pipe, settings = build_from_config(folder, pipeline_cls, parts, absent, device, dtype)
    settings.update(options)
    return pipe, settings
