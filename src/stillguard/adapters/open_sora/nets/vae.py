"""Open-Sora 1.2's video autoencoder (``OpenSoraVAE_V1_2``): SDXL 2D VAE + causal temporal VAE.

Source: hpcaitech/Open-Sora tag v1.2.0, ``opensora/models/vae/vae.py`` (``VideoAutoencoderKL``,
``VideoAutoencoderPipeline``, ``OpenSoraVAE_V1_2``). The 2D VAE *is* diffusers'
``AutoencoderKL`` (the official code loads ``PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers/vae``),
kept here as ``spatial_vae.module`` so that ``state_dict()`` keys match the official checkpoint
``hpcai-tech/OpenSora-VAE-v1.2`` (``spatial_vae.module.*``, ``temporal_vae.*``, ``scale``,
``shift``).

Latent recipe (as v1.2): per frame ``SD-latent = 0.18215 · AutoencoderKL(x)`` (the official
hard-coded SD factor, not SDXL's 0.13025), then the temporal VAE on chunks of
``micro_frame_size = 17`` frames (5 latent frames each), then ``z = (z − shift) / scale`` with the
published per-channel ``shift = (−0.10, 0.34, 0.27, 0.98)`` and ``scale = (3.85, 2.32, 2.33, 3.06)``.
``decode`` inverts each step. Choice left open by the papers: ``sample=False`` takes the posterior
means (deterministic, used by the attacks); the official pipeline samples both posteriors.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor, nn

from .vae_temporal import TemporalVAE, TemporalVAEConfig

SD_SCALE = 0.18215
#: ``OpenSoraVAE_V1_2`` normalisation constants (vae.py)
SHIFT = (-0.10, 0.34, 0.27, 0.98)
SCALE = (3.85, 2.32, 2.33, 3.06)
#: the SDXL VAE (``pixart_sigma_sdxlvae_T5_diffusers/vae/config.json``; SDXL-VAE is the same net)
SDXL_VAE = dict(
    in_channels=3, out_channels=3, latent_channels=4, layers_per_block=2, norm_num_groups=32,
    block_out_channels=[128, 256, 512, 512], down_block_types=["DownEncoderBlock2D"] * 4,
    up_block_types=["UpDecoderBlock2D"] * 4, act_fn="silu", sample_size=1024,
    scaling_factor=0.13025,
)  # fmt: skip


@dataclass
class VideoVAEConfig:
    """What shapes a :class:`VideoAutoencoderPipeline` (defaults: ``OpenSoraVAE_V1_2``)."""

    spatial: dict[str, Any] = field(default_factory=lambda: dict(SDXL_VAE))
    temporal: TemporalVAEConfig = field(default_factory=TemporalVAEConfig)
    micro_frame_size: int | None = 17
    micro_batch_size: int | None = 4
    shift: tuple[float, ...] = SHIFT
    scale: tuple[float, ...] = SCALE

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> VideoVAEConfig:
        """From our ``vae/config.json``, or the official one (which names no sub-configs: then the
        SDXL VAE and ``VAE_Temporal_SD`` are meant)."""
        spatial = data.get("spatial_vae_config") or dict(SDXL_VAE)
        temporal = TemporalVAEConfig.from_dict(data.get("temporal_vae_config") or {})
        return cls(
            spatial=dict(spatial),
            temporal=temporal,
            micro_frame_size=data.get("micro_frame_size", 17),
            micro_batch_size=data.get(
                "micro_batch_size", (data.get("vae_2d") or {}).get("micro_batch_size", 4)
            ),
            shift=tuple(data.get("shift", SHIFT)),
            scale=tuple(data.get("scale", SCALE)),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model_type": "VideoAutoencoderPipeline",
            "spatial_vae_config": self.spatial,
            "temporal_vae_config": self.temporal.to_dict(),
            "micro_frame_size": self.micro_frame_size,
            "micro_batch_size": self.micro_batch_size,
            "shift": list(self.shift),
            "scale": list(self.scale),
        }


class SpatialVAE(nn.Module):
    """``VideoAutoencoderKL``: diffusers ``AutoencoderKL`` applied frame by frame (``module``)."""

    def __init__(self, config: dict[str, Any], micro_batch_size: int | None) -> None:
        super().__init__()
        from diffusers import AutoencoderKL

        self.module = AutoencoderKL(**{k: v for k, v in config.items() if not k.startswith("_")})
        self.micro_batch_size = micro_batch_size

    def _chunks(self, x: Tensor) -> list[Tensor]:
        bs = self.micro_batch_size or x.shape[0]
        return list(x.split(bs))

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """``(B, 3, T, H, W)`` in [-1, 1] -> ``0.18215 ·`` latent ``(B, 4, T, H/8, W/8)``;
        posterior mean, or a sample drawn from ``generator`` when one is given."""
        b = x.shape[0]
        frames = x.transpose(1, 2).flatten(0, 1)
        outs = []
        for chunk in self._chunks(frames):
            dist = self.module.encode(chunk).latent_dist
            outs.append(dist.mode() if generator is None else dist.sample(generator))
        z = torch.cat(outs) * SD_SCALE
        return z.unflatten(0, (b, -1)).transpose(1, 2)

    def decode(self, z: Tensor) -> Tensor:
        """``(B, 4, T, h, w)`` -> frames ``(B, 3, T, 8h, 8w)`` in about [-1, 1]."""
        b = z.shape[0]
        lat = z.transpose(1, 2).flatten(0, 1) / SD_SCALE
        x = torch.cat([self.module.decode(c).sample for c in self._chunks(lat)])
        return x.unflatten(0, (b, -1)).transpose(1, 2)


class VideoAutoencoderPipeline(nn.Module):
    """``spatial_vae`` + ``temporal_vae`` + ``scale``/``shift`` buffers ``(1, 4, 1, 1, 1)``."""

    def __init__(self, cfg: VideoVAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.spatial_vae = SpatialVAE(cfg.spatial, cfg.micro_batch_size)
        self.temporal_vae = TemporalVAE(cfg.temporal)
        self.register_buffer("scale", torch.tensor(cfg.scale)[None, :, None, None, None])
        self.register_buffer("shift", torch.tensor(cfg.shift)[None, :, None, None, None])

    @property
    def spatial_factor(self) -> int:
        return 2 ** (len(self.config.spatial["block_out_channels"]) - 1)

    def latent_frames(self, frames: int) -> int:
        """``get_latent_size`` in time: micro-chunks of 17 frames -> 5 latent frames each."""
        m = self.config.micro_frame_size
        tv = self.temporal_vae
        if m is None:
            return tv.latent_frames(frames)
        return (frames // m) * tv.latent_frames(m) + (
            tv.latent_frames(frames % m) if frames % m else 0
        )

    def encode(self, x: Tensor, generator: torch.Generator | None = None) -> Tensor:
        """Video ``(B, 3, T, H, W)`` in [-1, 1] -> normalised latent ``(B, 4, T', H/8, W/8)``.

        Without ``generator`` both posteriors give their means (differentiable, deterministic);
        with one, both are sampled from it (as the official pipeline, seeded).
        """
        xz = self.spatial_vae.encode(x, generator)
        m = self.config.micro_frame_size or xz.shape[2]
        outs = []
        for i in range(0, xz.shape[2], m):
            mean, logvar = self.temporal_vae.encode(xz[:, :, i : i + m])
            if generator is not None:
                eps = torch.randn(mean.shape, generator=generator, device=generator.device)
                mean = mean + (0.5 * logvar).exp() * eps.to(mean)
            outs.append(mean)
        return self.normalise(torch.cat(outs, 2))

    def normalise(self, z: Tensor) -> Tensor:
        """Temporal-VAE latent -> the denoiser's latent: ``(z − shift) / scale``."""
        return (z - self.shift.to(z.dtype)) / self.scale.to(z.dtype)

    def decode(self, z: Tensor, num_frames: int) -> Tensor:
        """Normalised latent ``(B, 4, T', h, w)`` -> video ``(B, 3, num_frames, 8h, 8w)``."""
        z = z * self.scale.to(z.dtype) + self.shift.to(z.dtype)
        m = self.config.micro_frame_size
        if m is None:
            xz = self.temporal_vae.decode(z, num_frames)
        else:
            step, parts, left = self.temporal_vae.latent_frames(m), [], num_frames
            for i in range(0, z.shape[2], step):
                parts.append(self.temporal_vae.decode(z[:, :, i : i + step], min(m, left)))
                left -= m
            xz = torch.cat(parts, 2)
        return self.spatial_vae.decode(xz)


def build_video_vae(cfg: VideoVAEConfig, device: Any = None) -> VideoAutoencoderPipeline:
    """Build under ``torch.device(device)`` (``"meta"`` allocates nothing)."""
    with torch.device(device or "cpu"):
        return VideoAutoencoderPipeline(cfg)
