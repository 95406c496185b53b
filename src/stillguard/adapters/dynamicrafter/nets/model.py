"""The whole DynamiCrafter model as stored in ``model.ckpt`` (``LatentVisualDiffusion``).

Source: Doubiiu/DynamiCrafter ``lvdm/models/ddpm3d.py`` (``DDPM.register_schedule``,
``LatentDiffusion.__init__``, ``LatentVisualDiffusion``, ``DiffusionWrapper``) and
``lvdm/models/utils_diffusion.py`` (``make_beta_schedule``, ``rescale_zero_terminal_snr``).
``state_dict()`` keys: the schedule buffers (``betas`` ... ``posterior_mean_coef2``, 1000 each, plus
``scale_arr`` (1400) when ``use_dynamic_rescale``), ``model.diffusion_model.*`` (:class:`DCUNet`),
``first_stage_model.*`` (:class:`DCAutoencoderKL`), ``cond_stage_model.*`` (OpenCLIP text tower),
``embedder.*`` (OpenCLIP image tower), ``image_proj_model.*`` (Resampler). ``use_ema: False`` in
every inference config, so no ``model_ema.*``; ``scale_factor`` is a plain float
(``scale_by_std: False``) and ``lvlb_weights``/``logvar`` are not persistent.

``config`` is a dict of the component configs: ``unet``, ``vae``, ``clip`` (``embed_dim``,
``vision``, ``text``), ``resampler``, ``schedule`` (``timesteps``, ``linear_start``,
``linear_end``, ``rescale_betas_zero_snr``, ``parameterization``, ``use_dynamic_rescale``,
``base_scale``, ``turning_step``, ``scale_factor``). ``with_text=False`` leaves the text tower out
(the adapters use precomputed prompt embeddings).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch
from torch import nn

from .clip import ImageEmbedder, Resampler, TextEmbedder
from .unet import DCUNet
from .vae import DCAutoencoderKL


def zero_snr(betas: np.ndarray) -> np.ndarray:
    """Rescale betas to zero terminal SNR (arXiv 2305.08891, Algorithm 1)."""
    ab = np.sqrt(np.cumprod(1.0 - betas))
    a0, at = ab[0].copy(), ab[-1].copy()
    ab = (ab - at) * a0 / (a0 - at)
    ab = ab**2
    return 1.0 - np.concatenate([ab[:1], ab[1:] / ab[:-1]])


def schedule_buffers(s: dict[str, Any]) -> dict[str, torch.Tensor]:
    """The persistent schedule buffers of ``DDPM``/``LatentDiffusion``, float32, in official order."""
    n = int(s.get("timesteps", 1000))
    betas = np.linspace(s["linear_start"] ** 0.5, s["linear_end"] ** 0.5, n, dtype=np.float64) ** 2
    if s.get("rescale_betas_zero_snr", False):
        betas = zero_snr(betas)
    alphas = 1.0 - betas
    ac = np.cumprod(alphas)
    ac_prev = np.append(1.0, ac[:-1])
    with np.errstate(divide="ignore"):
        out = {
            "betas": betas,
            "alphas_cumprod": ac,
            "alphas_cumprod_prev": ac_prev,
            "sqrt_alphas_cumprod": np.sqrt(ac),
            "sqrt_one_minus_alphas_cumprod": np.sqrt(1.0 - ac),
            "log_one_minus_alphas_cumprod": np.log(1.0 - ac),
        }
        if s.get("parameterization", "eps") != "v":
            out["sqrt_recip_alphas_cumprod"] = np.sqrt(1.0 / ac)
            out["sqrt_recipm1_alphas_cumprod"] = np.sqrt(1.0 / ac - 1)
        else:  # the official code stores zeros for v-prediction
            out["sqrt_recip_alphas_cumprod"] = np.zeros_like(ac)
            out["sqrt_recipm1_alphas_cumprod"] = np.zeros_like(ac)
        var = betas * (1.0 - ac_prev) / (1.0 - ac)
        out["posterior_variance"] = var
        out["posterior_log_variance_clipped"] = np.log(np.maximum(var, 1e-20))
        out["posterior_mean_coef1"] = betas * np.sqrt(ac_prev) / (1.0 - ac)
        out["posterior_mean_coef2"] = (1.0 - ac_prev) * np.sqrt(alphas) / (1.0 - ac)
    if s.get("use_dynamic_rescale", False):
        turn = int(s.get("turning_step", 400))
        base = float(s.get("base_scale", 0.7))
        out["scale_arr"] = np.concatenate([np.linspace(1.0, base, turn), np.full(n, base)])
    return {k: torch.tensor(v, dtype=torch.float32) for k, v in out.items()}


class DiffusionWrapper(nn.Module):
    """``model``: holds ``diffusion_model`` (conditioning_key ``hybrid``: concat + cross-attention)."""

    def __init__(self, unet: dict[str, Any]) -> None:
        super().__init__()
        self.diffusion_model = DCUNet(**unet)


class DCModel(nn.Module):
    """``LatentVisualDiffusion`` (weights and schedule only; sampling lives in the adapter)."""

    def __init__(self, config: dict[str, Any], *, with_text: bool = True) -> None:
        super().__init__()
        self.config = config
        sched = config["schedule"]
        for name, value in schedule_buffers(sched).items():
            self.register_buffer(name, value)
        self.parameterization = sched.get("parameterization", "eps")
        self.use_dynamic_rescale = bool(sched.get("use_dynamic_rescale", False))
        self.scale_factor = float(sched.get("scale_factor", 0.18215))
        self.model = DiffusionWrapper(config["unet"])
        self.first_stage_model = DCAutoencoderKL(**config["vae"])
        clip = config["clip"]
        args = (clip["vision"], clip["text"], int(clip["embed_dim"]))
        self.cond_stage_model = TextEmbedder(*args) if with_text else None
        self.embedder = ImageEmbedder(*args)
        self.image_proj_model = Resampler(**config["resampler"])

    @property
    def unet(self) -> DCUNet:
        return self.model.diffusion_model

    @property
    def vae(self) -> DCAutoencoderKL:
        return self.first_stage_model
