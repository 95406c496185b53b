"""The photo's latent where a family replaces the first latent frame with it (LTX-Video, LTX-2,
Cosmos-Predict2): the posterior draw, and the latent bookkeeping of the LTX video VAEs.

* :func:`posterior_latent`: the posterior mode, or a draw ``mean + std·ε``; the adapter contract
  passes no generator to ``encode``, so without one ε is keyed by the inputs
  (:func:`~.flow.keyed_randn`: a fresh draw for every new image, reproducible runs, a batch
  drawing what its items draw alone);
* :class:`LTXLatents`: a mixin for the pipelines of the LTX VAEs (``vae_spatial_compression_ratio``
  / ``vae_temporal_compression_ratio``, ``latents_mean``/``latents_std`` buffers): latent frame
  counts and shape, the pipeline's normalisation, the conditioning from a raw 1-frame latent
  (normalised, repeated over the latent frames, as the pipelines' ``init_latents``), video
  latents (posterior mode) and flow-matching training timesteps.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ..base import Conditioning
from .flow import flow_timesteps, keyed_randn
from .generate import video_pixels


def posterior_latent(
    dist: Any, sample: bool, generator: torch.Generator | None, keys: tuple[Tensor, ...]
) -> Tensor:
    """``dist.mode()``, or with ``sample`` ``dist.mean + dist.std·ε``: ε from ``generator`` (one
    draw for the whole batch) or, without one, keyed per item by ``keys``."""
    lat = dist.mode()
    if not sample:
        return lat
    eps = (torch.randn(lat.shape, generator=generator) if generator is not None
           else keyed_randn(lat.shape, *keys))  # fmt: skip
    return dist.mean + dist.std * eps.to(lat)


class LTXLatents:
    """Latent bookkeeping of an adapter on an LTX video VAE (a mixin; needs ``pipe``,
    ``opt_num_frames``, ``height``, ``width``, ``device``, ``dtype``, ``prepare``)."""

    pipe: Any
    opt_num_frames: int
    height: int
    width: int
    device: torch.device
    dtype: torch.dtype

    def _latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.pipe.vae_temporal_compression_ratio + 1

    def _normalize(self, lat: Tensor) -> Tensor:
        """Raw VAE latent ``(B,C,...)`` -> the transformer's scale (the pipeline's normalisation)."""
        vae = self.pipe.vae
        shape = (1, -1) + (1,) * (lat.ndim - 2)
        mean, std = vae.latents_mean.view(shape).to(lat), vae.latents_std.view(shape).to(lat)
        return (lat - mean) / std

    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sr = self.pipe.vae_spatial_compression_ratio
        ch = self.pipe.transformer.config.in_channels
        frames = self._latent_frames(self.opt_num_frames)
        return (batch, frames, ch, self.height // sr, self.width // sr)

    def condition_on_latent(self, first_latent: Tensor) -> Conditioning:
        """The conditioning from a raw 1-frame latent ``(B,C,h,w)`` (for latent-space studies)."""
        frames = self._latent_frames(self.opt_num_frames)
        scaled = self._normalize(first_latent)
        image_latents = scaled.unsqueeze(1).expand(-1, frames, -1, -1, -1)
        return Conditioning(image_latents=image_latents, first_latent=first_latent)

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> normalised posterior-mode latent. Shape: ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        pixels = video_pixels(self, video, self.pipe.vae_temporal_compression_ratio)
        lat = self.pipe.vae.encode(pixels).latent_dist.mode()
        return self._normalize(lat).transpose(1, 2)

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 1000·σ``, σ = the sampler's token-count shift applied to ``U(0.001, 0.999)``.
        Shape ``(batch,)``."""
        _, f, _, h, w = self.latent_shape(1)
        return flow_timesteps(self.pipe.scheduler, batch, generator, f * h * w, self.device)
