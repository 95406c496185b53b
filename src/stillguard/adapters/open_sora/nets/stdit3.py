"""STDiT3, the denoiser of Open-Sora 1.2, with the official parameter names.

Source: hpcaitech/Open-Sora tag v1.2.0, ``opensora/models/stdit/stdit3.py`` (``STDiT3Block``,
``STDiT3Config``, ``STDiT3``, ``STDiT3-XL/2``: depth 28, hidden 1152, 16 heads, patch (1, 2, 2)).
Written from the definitions; no code copied.

Structure: patchify (Conv3d) + 2D sin-cos position embedding scaled by the pixel resolution;
timestep + fps embeddings -> ``t_block`` (6 adaLN vectors); T5 captions through ``y_embedder``;
then ``depth`` pairs of blocks, each pair a *spatial* block (self-attention over the ``S = h·w``
tokens of each frame) and a *temporal* block (self-attention over the ``T`` frames of each
position, with RoPE); every block also has caption cross-attention and an MLP. Image
conditioning (v1.2's ``mask_strategy``): the caller replaces latent frames by the reference
latent and passes ``x_mask`` (B, T) False on those frames, whose adaLN then uses the
embedding of timestep 0 (``t0``) instead of ``t``. The output has ``2·C`` channels
(``pred_sigma``); the first ``C`` are the rectified-flow velocity.

Tensor layout (as the official model): ``x (B, C, T, H, W)`` latent; tokens ``(B, T·S, D)``.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn
from torch.utils.checkpoint import checkpoint

from .layers import (
    Attention,
    CaptionEmbedder,
    CrossAttention,
    FinalLayer,
    Mlp,
    RotaryEmbedding,
    TimestepEmbedder,
    frame_select,
    modulate,
    position_embedding_2d,
)


@dataclass
class STDiT3Config:
    """``STDiT3Config`` fields that shape the network (defaults: STDiT3-XL/2 of v1.2)."""

    in_channels: int = 4
    patch_size: tuple[int, int, int] = (1, 2, 2)
    hidden_size: int = 1152
    depth: int = 28
    num_heads: int = 16
    mlp_ratio: float = 4.0
    pred_sigma: bool = True
    caption_channels: int = 4096
    model_max_length: int = 300
    qk_norm: bool = True
    input_sq_size: int = 512

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> STDiT3Config:
        """Keep the known keys of an official or saved ``config.json`` (others are ignored)."""
        known = {f.name for f in fields(cls)}
        kw = {k: v for k, v in data.items() if k in known}
        if "patch_size" in kw:
            kw["patch_size"] = tuple(kw["patch_size"])
        return cls(**kw)

    def to_dict(self) -> dict[str, Any]:
        return {"model_type": "STDiT3", **asdict(self), "patch_size": list(self.patch_size)}


class STDiT3Block(nn.Module):
    """One spatial or temporal block: adaLN self-attention, cross-attention, adaLN MLP."""

    def __init__(self, cfg: STDiT3Config, temporal: bool, rope: Any = None) -> None:
        super().__init__()
        d = cfg.hidden_size
        self.temporal = temporal
        self.norm1 = nn.LayerNorm(d, eps=1e-6, elementwise_affine=False)
        self.attn = Attention(d, cfg.num_heads, qk_norm=cfg.qk_norm, rope=rope)
        self.cross_attn = CrossAttention(d, cfg.num_heads)
        self.norm2 = nn.LayerNorm(d, eps=1e-6, elementwise_affine=False)
        self.mlp = Mlp(d, int(d * cfg.mlp_ratio))
        self.scale_shift_table = nn.Parameter(torch.randn(6, d) / d**0.5)

    def _mix(self, x: Tensor, frames: int) -> Tensor:
        """Self-attention within frames (spatial) or across frames per position (temporal)."""
        b, n, c = x.shape
        s = n // frames
        if self.temporal:
            h = x.view(b, frames, s, c).transpose(1, 2).reshape(b * s, frames, c)
            return self.attn(h).view(b, s, frames, c).transpose(1, 2).reshape(b, n, c)
        return self.attn(x.reshape(b * frames, s, c)).view(b, n, c)

    def forward(
        self,
        x: Tensor,
        y: Tensor,
        t: Tensor,
        mask: Tensor | None,
        x_mask: Tensor | None,
        t0: Tensor | None,
        frames: int,
    ) -> Tensor:
        b = x.shape[0]
        mods = (self.scale_shift_table[None] + t.reshape(b, 6, -1)).chunk(6, 1)
        shift_msa, scale_msa, gate_msa, shift_mlp, scale_mlp, gate_mlp = mods
        zero = None
        if x_mask is not None:
            zero = (self.scale_shift_table[None] + t0.reshape(b, 6, -1)).chunk(6, 1)

        def select(a: Tensor, a0: Tensor) -> Tensor:
            return a if x_mask is None else frame_select(x_mask, a, a0, frames)

        h = self.norm1(x)
        hm = modulate(h, shift_msa, scale_msa)
        if zero is not None:
            hm = select(hm, modulate(h, zero[0], zero[1]))
        hm = self._mix(hm, frames)
        x = x + select(gate_msa * hm, None if zero is None else zero[2] * hm)
        x = x + self.cross_attn(x, y, mask)
        h = self.norm2(x)
        hm = modulate(h, shift_mlp, scale_mlp)
        if zero is not None:
            hm = select(hm, modulate(h, zero[3], zero[4]))
        hm = self.mlp(hm)
        return x + select(gate_mlp * hm, None if zero is None else zero[5] * hm)


class STDiT3(nn.Module):
    """The STDiT3 network; ``state_dict()`` keys are those of ``hpcai-tech/OpenSora-STDiT-v3``."""

    def __init__(self, cfg: STDiT3Config) -> None:
        super().__init__()
        self.config = cfg
        d = cfg.hidden_size
        self.out_channels = cfg.in_channels * 2 if cfg.pred_sigma else cfg.in_channels
        self.rope = RotaryEmbedding(d // cfg.num_heads)
        self.x_embedder = _PatchEmbed3D(cfg.patch_size, cfg.in_channels, d)
        self.t_embedder = TimestepEmbedder(d)
        self.fps_embedder = TimestepEmbedder(d)
        self.t_block = nn.Sequential(nn.SiLU(), nn.Linear(d, 6 * d))
        self.y_embedder = CaptionEmbedder(cfg.caption_channels, d, cfg.model_max_length)
        self.spatial_blocks = nn.ModuleList(
            [STDiT3Block(cfg, temporal=False) for _ in range(cfg.depth)]
        )
        self.temporal_blocks = nn.ModuleList(
            [STDiT3Block(cfg, temporal=True, rope=self.rope.rotate) for _ in range(cfg.depth)]
        )
        self.final_layer = FinalLayer(d, math.prod(cfg.patch_size), self.out_channels)
        #: recompute each block in backward (v1.2 trains with ``auto_grad_checkpoint`` too)
        self.gradient_checkpointing = False

    @property
    def attn_processors(self) -> dict[str, Any]:
        """Self-attention processors by ``<module name>.processor`` (diffusers' convention)."""
        return {
            f"{n}.processor": m.processor
            for n, m in self.named_modules()
            if isinstance(m, Attention)
        }

    def forward(
        self,
        x: Tensor,
        timestep: Tensor,
        y: Tensor,
        mask: Tensor | None = None,
        x_mask: Tensor | None = None,
        fps: Tensor | None = None,
        height: Tensor | None = None,
        width: Tensor | None = None,
    ) -> Tensor:
        """One denoiser call.

        Args:
            x: noisy latent ``(B, C, T, H, W)``.
            timestep: ``(B,)`` in [0, 1000] (1000 = pure noise).
            y: T5 features ``(B, L, caption_channels)``; ``mask`` ``(B, L)`` marks real tokens.
            x_mask: ``(B, T)`` bool, False on conditioning frames (they get timestep 0's adaLN).
            fps, height, width: ``(B,)`` frame rate and *pixel* size of the video.

        Returns:
            ``(B, 2C, T, H, W)`` float32; channels ``:C`` are the velocity ``x0 - noise``.
        """
        cfg = self.config
        dtype = self.x_embedder.proj.weight.dtype
        b, _, tx, hx, wx = x.shape
        pt, ph, pw = cfg.patch_size
        frames, hh, ww = -(-tx // pt), -(-hx // ph), -(-wx // pw)
        s = hh * ww
        res = (float(height[0]) * float(width[0])) ** 0.5
        pos = position_embedding_2d(
            cfg.hidden_size, hh, ww, res / cfg.input_sq_size, round(s**0.5), x.device, dtype
        )
        fps_emb = self.fps_embedder(fps.to(x.device, dtype).reshape(-1).expand(b))
        # the official model casts the timestep to the weight dtype first (bf16 rounds it)
        t = self.t_embedder(timestep.to(x.device, dtype).reshape(-1).expand(b)) + fps_emb
        t_mlp, t0, t0_mlp = self.t_block(t), None, None
        if x_mask is not None:
            t0 = self.t_embedder(torch.zeros(b, device=x.device)) + fps_emb
            t0_mlp = self.t_block(t0)
        y = self.y_embedder(y.to(dtype))
        h = self.x_embedder(x.to(dtype)).view(b, frames, s, -1) + pos
        h = h.flatten(1, 2)
        ckpt = self.gradient_checkpointing and torch.is_grad_enabled()
        pairs = zip(self.spatial_blocks, self.temporal_blocks, strict=True)
        for block in (b for pair in pairs for b in pair):
            args = (h, y, t_mlp, mask, x_mask, t0_mlp, frames)
            h = checkpoint(block, *args, use_reentrant=False) if ckpt else block(*args)
        h = self.final_layer(h, t, x_mask, t0, frames)
        co = self.out_channels
        h = h.view(b, frames, hh, ww, pt, ph, pw, co).permute(0, 7, 1, 4, 2, 5, 3, 6)
        h = h.reshape(b, co, frames * pt, hh * ph, ww * pw)
        return h[:, :, :tx, :hx, :wx].float()


class _PatchEmbed3D(nn.Module):
    """``PatchEmbed3D``: zero-pad to the patch grid, Conv3d with kernel = stride = patch."""

    def __init__(self, patch: tuple[int, int, int], in_chans: int, dim: int) -> None:
        super().__init__()
        self.patch = patch
        self.proj = nn.Conv3d(in_chans, dim, kernel_size=patch, stride=patch)

    def forward(self, x: Tensor) -> Tensor:
        """``(B, C, T, H, W)`` -> tokens ``(B, T'·H'·W', D)`` in (T, H, W) order."""
        pt, ph, pw = self.patch
        _, _, t, h, w = x.shape
        pad = (0, -w % pw, 0, -h % ph, 0, -t % pt)
        if any(pad):
            x = nn.functional.pad(x, pad)
        return self.proj(x).flatten(2).transpose(1, 2)
