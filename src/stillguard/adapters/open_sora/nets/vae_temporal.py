"""The causal temporal VAE of Open-Sora 1.2 (``VAE_Temporal_SD``), official parameter names.

Source: hpcaitech/Open-Sora tag v1.2.0, ``opensora/models/vae/vae_temporal.py`` (``CausalConv3d``,
``ResBlock``, ``Encoder``, ``Decoder``, ``VAE_Temporal``, ``VAE_Temporal_SD``) and
``opensora/models/vae/utils.py`` (``DiagonalGaussianDistribution``). A MAGVIT-v2-style 3D conv VAE
that works on the (scaled) SDXL-VAE latents: 4 -> 4 channels, 4x temporal compression, no spatial
compression. Written from the definitions; no code copied.

Causality: every conv pads only the past in time (zeros), so frame ``i`` of the output depends on
input frames ``<= i``. ``encode`` first prepends zero frames up to a multiple of 4 (one image ->
3 zero frames + the image -> 1 latent frame); ``decode`` drops as many frames from the front.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


@dataclass
class TemporalVAEConfig:
    """``VAE_Temporal`` arguments; defaults are ``VAE_Temporal_SD`` of v1.2."""

    in_out_channels: int = 4
    latent_embed_dim: int = 4
    embed_dim: int = 4
    filters: int = 128
    num_res_blocks: int = 4
    channel_multipliers: tuple[int, ...] = (1, 2, 2, 4)
    temporal_downsample: tuple[bool, ...] = (False, True, True)
    num_groups: int = 32

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TemporalVAEConfig:
        kw = {k: v for k, v in data.items() if k in {f.name for f in fields(cls)}}
        for key in ("channel_multipliers", "temporal_downsample"):
            if key in kw:
                kw[key] = tuple(kw[key])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        return {k: list(v) if isinstance(v, tuple) else v for k, v in d.items()}


class CausalConv3d(nn.Module):
    """Conv3d padded causally in time (past only) and symmetrically in space; holds ``conv``."""

    def __init__(
        self,
        cin: int,
        cout: int,
        kernel: int | tuple[int, int, int],
        stride: tuple[int, int, int] = (1, 1, 1),
        bias: bool = True,
    ) -> None:
        super().__init__()
        kt, kh, kw = (kernel,) * 3 if isinstance(kernel, int) else kernel
        self.pad = (kw // 2, kw // 2, kh // 2, kh // 2, (kt - 1) + (1 - stride[0]), 0)
        self.conv = nn.Conv3d(cin, cout, (kt, kh, kw), stride=stride, bias=bias)

    def forward(self, x: Tensor) -> Tensor:
        return self.conv(F.pad(x, self.pad))


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv twice, bias-free convs; ``conv3`` (1x1x1) when channels change."""

    def __init__(self, cin: int, cout: int, groups: int) -> None:
        super().__init__()
        self.norm1 = nn.GroupNorm(groups, cin)
        self.conv1 = CausalConv3d(cin, cout, 3, bias=False)
        self.norm2 = nn.GroupNorm(groups, cout)
        self.conv2 = CausalConv3d(cout, cout, 3, bias=False)
        self.conv3 = CausalConv3d(cin, cout, 1, bias=False) if cin != cout else None

    def forward(self, x: Tensor) -> Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        h = self.conv2(F.silu(self.norm2(h)))
        return h + (x if self.conv3 is None else self.conv3(x))


def _levels(cfg: TemporalVAEConfig) -> list[int]:
    return [cfg.filters * m for m in cfg.channel_multipliers]


class Encoder(nn.Module):
    """conv_in -> per level ``num_res_blocks`` ResBlocks (+ a stride-(2,1,1) conv where the level
    downsamples time; ``nn.Identity`` otherwise) -> ResBlocks -> GroupNorm-SiLU -> 1x1x1 conv."""

    def __init__(self, cfg: TemporalVAEConfig) -> None:
        super().__init__()
        g, levels, n = cfg.num_groups, _levels(cfg), cfg.num_res_blocks
        self.conv_in = CausalConv3d(cfg.in_out_channels, cfg.filters, 3, bias=False)
        self.block_res_blocks = nn.ModuleList()
        self.conv_blocks = nn.ModuleList()
        prev = cfg.filters
        for i, ch in enumerate(levels):
            self.block_res_blocks.append(
                nn.ModuleList([ResBlock(prev if j == 0 else ch, ch, g) for j in range(n)])
            )
            prev = ch
            if i < len(levels) - 1:
                down = cfg.temporal_downsample[i]
                self.conv_blocks.append(
                    CausalConv3d(ch, ch, 3, (2, 1, 1)) if down else nn.Identity()
                )
        self.res_blocks = nn.ModuleList([ResBlock(prev, prev, g) for _ in range(n)])
        self.norm1 = nn.GroupNorm(g, prev)
        self.conv2 = CausalConv3d(prev, 2 * cfg.latent_embed_dim, 1)

    def forward(self, x: Tensor) -> Tensor:
        x = self.conv_in(x)
        for i, blocks in enumerate(self.block_res_blocks):
            for block in blocks:
                x = block(x)
            if i < len(self.conv_blocks):
                x = self.conv_blocks[i](x)
        for block in self.res_blocks:
            x = block(x)
        return self.conv2(F.silu(self.norm1(x)))


class Decoder(nn.Module):
    """Mirror of :class:`Encoder`; time is upsampled by a conv to ``2·C`` channels followed by
    depth-to-time (``B (C 2) T -> B C (T 2)``)."""

    def __init__(self, cfg: TemporalVAEConfig) -> None:
        super().__init__()
        g, levels, n = cfg.num_groups, _levels(cfg), cfg.num_res_blocks
        self.t_down = cfg.temporal_downsample
        top = levels[-1]
        self.conv1 = CausalConv3d(cfg.latent_embed_dim, top, 3)
        self.res_blocks = nn.ModuleList([ResBlock(top, top, g) for _ in range(n)])
        blocks: list[nn.Module] = []
        convs: list[nn.Module] = []
        prev = top
        for i in reversed(range(len(levels))):
            ch = levels[i]
            blocks.insert(
                0, nn.ModuleList([ResBlock(prev if j == 0 else ch, ch, g) for j in range(n)])
            )
            prev = ch
            if i > 0:
                up = self.t_down[i - 1]
                convs.insert(0, CausalConv3d(prev, prev * 2, 3) if up else nn.Identity())
        self.block_res_blocks = nn.ModuleList(blocks)
        self.conv_blocks = nn.ModuleList(convs)
        self.norm1 = nn.GroupNorm(g, prev)
        self.conv_out = CausalConv3d(prev, cfg.in_out_channels, 3)

    def forward(self, z: Tensor) -> Tensor:
        x = self.conv1(z)
        for block in self.res_blocks:
            x = block(x)
        for i in reversed(range(len(self.block_res_blocks))):
            for block in self.block_res_blocks[i]:
                x = block(x)
            if i > 0:
                x = self.conv_blocks[i - 1](x)
                if self.t_down[i - 1]:
                    b, c2, t, h, w = x.shape
                    x = (
                        x.view(b, c2 // 2, 2, t, h, w)
                        .transpose(2, 3)
                        .reshape(b, c2 // 2, 2 * t, h, w)
                    )
        return self.conv_out(F.silu(self.norm1(x)))


class TemporalVAE(nn.Module):
    """``VAE_Temporal``: ``encoder``, ``quant_conv``, ``post_quant_conv``, ``decoder``."""

    def __init__(self, cfg: TemporalVAEConfig) -> None:
        super().__init__()
        self.config = cfg
        self.factor = 2 ** sum(bool(d) for d in cfg.temporal_downsample)
        self.encoder = Encoder(cfg)
        self.quant_conv = CausalConv3d(2 * cfg.latent_embed_dim, 2 * cfg.embed_dim, 1)
        self.post_quant_conv = CausalConv3d(cfg.embed_dim, cfg.latent_embed_dim, 1)
        self.decoder = Decoder(cfg)

    def latent_frames(self, frames: int) -> int:
        """``get_latent_size`` in time: ``ceil(frames / 4)``."""
        return -(-frames // self.factor)

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``(B, 4, T, h, w)`` -> posterior ``(mean, logvar)`` each ``(B, 4, ceil(T/4), h, w)``;
        logvar clamped to [-30, 20] as ``DiagonalGaussianDistribution``."""
        pad = -x.shape[2] % self.factor
        if pad:
            x = F.pad(x, (0, 0, 0, 0, pad, 0))
        moments = self.quant_conv(self.encoder(x)).to(x.dtype)
        mean, logvar = moments.chunk(2, 1)
        return mean, logvar.clamp(-30.0, 20.0)

    def decode(self, z: Tensor, num_frames: int) -> Tensor:
        """``(B, 4, t, h, w)`` -> ``(B, 4, num_frames, h, w)`` (front padding frames dropped)."""
        x = self.decoder(self.post_quant_conv(z))
        return x[:, :, -num_frames % self.factor :]


def build_temporal_vae(cfg: TemporalVAEConfig, device: Any = None) -> TemporalVAE:
    """Build under ``torch.device(device)`` (``"meta"`` allocates nothing)."""
    with torch.device(device or "cpu"):
        return TemporalVAE(cfg)
