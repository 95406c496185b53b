"""The three training stages of the Wan-family toy: VAE, latent cache, transformer.

Same data, budgets, checkpoints and schedules as the CogVideoX toy (:mod:`.stages`); what differs
is what the Wan design asks for:

* VAE (``AutoencoderKLWan``, causal, 4x in time): clips must have ``1 + 4k`` frames, so the clip
  schedule is 1, 5, 5, 9 frames (batch 12/4/4/2); loss L1 + MSE + 1e-4 KL per latent element, on
  the widened ``VAE_SCENES`` videos, as the CogVideoX toy;
* latent cache: per video the 9-frame latent and the conditioning latent, both posterior *modes*
  (the pipeline encodes with ``sample_mode="argmax"``); the conditioning is the encode of
  ``[frame 0, grey x 8]`` (zeros in [-1, 1]), exactly the pipeline's ``video_condition``. The
  VAE's ``latents_mean`` / ``latents_std`` are set per channel from the cached video latents and
  both latents are stored normalised (the pipeline normalises both the same way);
* transformer: rectified flow as Wan: ``noisy = (1 − σ)·z + σ·ε``, target velocity ``ε − z``,
  timestep ``1000·σ``; σ is drawn uniform then shifted with the sampler's ``flow_shift`` (3.0), so
  training visits the noise levels that sampling visits; input ``noisy | mask | condition`` (36
  channels). AdamW lr 1e-3, wd 0.01, betas (0.9, 0.99), 100-step warm-up, cosine to 5 %,
  grad-clip 1, EMA 0.999 (shipped). No conditioning-noise augmentation: the pipeline uses the mode.
"""

from __future__ import annotations

import logging

import torch
import torch.nn.functional as F

from stillguard.toy import wan_build as build
from stillguard.toy.training import stages
from stillguard.toy.training.data import make_videos
from stillguard.toy.training.ema_loop import train_with_ema
from stillguard.toy.training.stages import Settings, _to_vae

logger = logging.getLogger(__name__)

__all__ = ["Settings", "cache_latents", "train_transformer", "train_vae"]

#: (clip length, batch) cycled step by step; causal Wan VAE clips have 1 + 4k frames
CLIP_SCHEDULE = ((1, 12), (5, 4), (5, 4), (9, 2))


# ---------------------------------------------------------------------------------- stage 1
def train_vae(s: Settings):
    """Train the causal video VAE on fresh widened synthetic videos (the shared VAE stage with the
    Wan toy's VAE and clip schedule, and a last validation). Returns ``(vae, log)``."""
    return stages.train_vae(
        s, build_vae=build.build_vae, clip_schedule=CLIP_SCHEDULE, final_validation=True
    )


# ---------------------------------------------------------------------------------- stage 2
@torch.no_grad()
def _encode(vae, s: Settings, stream: int, n: int) -> dict[str, torch.Tensor]:
    vid, cond = [], []
    for i in range(0, n, 32):
        x = _to_vae(make_videos(s.seed, stream, i, min(32, n - i))).to(s.device)
        vid.append(vae.encode(x).latent_dist.mode().cpu())
        grey = torch.cat([x[:, :, :1], torch.zeros_like(x[:, :, 1:])], 2)  # video_condition
        cond.append(vae.encode(grey).latent_dist.mode().cpu())
    return {"vid": torch.cat(vid), "cond": torch.cat(cond)}  # (B, C, F_lat, h, w), raw


def cache_latents(vae, s: Settings) -> dict:
    """Encode the training and validation videos once; sets ``latents_mean``/``latents_std``
    per channel and returns the *normalised* latents (the transformer's inputs)."""
    cache = stages.encoded_videos(vae, s, _encode)
    raw = cache["train"]["vid"]
    mean = raw.mean(dim=(0, 2, 3, 4))
    std = raw.std(dim=(0, 2, 3, 4)).clamp_min(1e-4)
    vae.register_to_config(latents_mean=mean.tolist(), latents_std=std.tolist())
    logger.info("latent channel std %.3f..%.3f", std.min().item(), std.max().item())
    view = (1, -1, 1, 1, 1)

    def norm(d: dict) -> dict:
        return {k: (v - mean.view(view)) / std.view(view) for k, v in d.items()}

    return {"train": norm(cache["train"]), "val": norm(cache["val"])}


# ---------------------------------------------------------------------------------- stage 3
def _flow_loss(model, z, cond, sigma, eps) -> torch.Tensor:
    b, f = z.shape[0], z.shape[2]
    s5 = sigma.view(-1, 1, 1, 1, 1)
    noisy = (1 - s5) * z + s5 * eps
    mask = build.frame_mask(b, f, z.device)
    hidden = torch.cat([noisy, mask, cond], 1)
    txt = build.null_prompt().to(z.device).expand(b, -1, -1)
    pred = model(
        hidden_states=hidden, timestep=sigma * 1000, encoder_hidden_states=txt, return_dict=False
    )[0]
    return F.mse_loss(pred, eps - z)


@torch.no_grad()
def _validate(model, lat: dict, s: Settings) -> float:
    gen = torch.Generator(s.device).manual_seed(1234)
    losses, n = [], lat["vid"].shape[0]
    for i in range(0, n, 16):
        idx = torch.arange(i, min(i + 16, n))
        z, cond = lat["vid"][idx].to(s.device), lat["cond"][idx].to(s.device)
        sigma = torch.linspace(0.02, 0.98, len(idx), device=s.device)
        eps = torch.randn(z.shape, generator=gen, device=s.device)
        losses.append(_flow_loss(model, z, cond, sigma, eps).item())
    return sum(losses) / len(losses)


def train_transformer(cache: dict, s: Settings):
    """Train the I2V transformer on cached normalised latents (flow-matching MSE; the shared loop
    of :mod:`.ema_loop`, 100-step warm-up). Returns ``(ema, log)``."""
    train, val = cache["train"], cache["val"]

    def step_loss(model, idx: torch.Tensor, gen: torch.Generator) -> torch.Tensor:
        z, cond = train["vid"][idx].to(s.device), train["cond"][idx].to(s.device)
        sigma = build.shift_sigma(torch.rand(s.batch, generator=gen, device=s.device))
        eps = torch.randn(z.shape, generator=gen, device=s.device)
        return _flow_loss(model, z, cond, sigma, eps)

    return train_with_ema(
        s, build.build_transformer, train["vid"].shape[0], step_loss,
        lambda ema: _validate(ema, val, s), warmup_steps=100, log_every=50, metric="flow MSE",
    )  # fmt: skip
