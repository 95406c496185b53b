"""Layers of Open-Sora 1.2's STDiT3, re-implemented with the official parameter names.

Source: hpcaitech/Open-Sora tag v1.2.0, ``opensora/models/layers/blocks.py`` (``LlamaRMSNorm``,
``Attention``, ``MultiHeadCrossAttention``, ``T2IFinalLayer``, ``TimestepEmbedder``,
``SizeEmbedder``, ``CaptionEmbedder``, ``PositionEmbedding2D``), timm's ``Mlp`` (``fc1``/``fc2``)
and ``rotary_embedding_torch.RotaryEmbedding`` (its ``freqs`` is a *parameter*, so the checkpoint
holds ``rope.freqs``). Written from the definitions; no code copied.

Self-attention runs through a swappable *processor* (``Attention.processor``), like diffusers'
attention modules, so that the shared capture machinery
(:mod:`stillguard.adapters._shared.capture`) can record probabilities. The official inference path
uses flash attention; here PyTorch SDPA (same softmax scale ``head_dim**-0.5``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn


class RMSNorm(nn.Module):
    """``LlamaRMSNorm``: normalise in float32, scale by ``weight``. Used as QK-norm (per head)."""

    def __init__(self, dim: int, eps: float = 1e-6) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(dim))
        self.eps = eps

    def forward(self, x: Tensor) -> Tensor:
        h = x.float()
        h = h * torch.rsqrt(h.pow(2).mean(-1, keepdim=True) + self.eps)
        return self.weight * h.to(x.dtype)


class RotaryEmbedding(nn.Module):
    """RoPE over the sequence axis (-2), interleaved pairs ``(2i, 2i+1)`` rotated by frequency
    ``freqs[i] = 10000^(-2i/dim)``, positions ``0..N-1`` (rotary_embedding_torch, ``lang`` mode)."""

    def __init__(self, dim: int, theta: float = 10000.0) -> None:
        super().__init__()
        freqs = 1.0 / theta ** (torch.arange(0, dim, 2)[: dim // 2].float() / dim)
        self.freqs = nn.Parameter(freqs, requires_grad=False)

    def rotate(self, t: Tensor) -> Tensor:
        """``t (..., N, d)`` -> rotated, same shape and dtype."""
        pos = torch.arange(t.shape[-2], device=t.device, dtype=self.freqs.dtype)
        ang = (pos[:, None] * self.freqs[None]).repeat_interleave(2, -1)
        pairs = t.unflatten(-1, (-1, 2))
        rot = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).flatten(-2)
        return (t * ang.cos() + rot * ang.sin()).to(t.dtype)


class AttnProcessor:
    """The default processor: SDPA over ``attn.project(x)``. Recording processors subclass it and
    override :meth:`inspect`, so their outputs are bit-identical to this one's."""

    def inspect(self, attn: Attention, q: Tensor, k: Tensor) -> None:
        """Called with the final ``q, k`` ``(B', heads, N, d)``; the default does nothing."""

    def __call__(self, attn: Attention, x: Tensor) -> Tensor:
        b, n, c = x.shape
        q, k, v = attn.project(x)
        self.inspect(attn, q, k)
        out = F.scaled_dot_product_attention(q, k, v)
        return attn.proj(out.transpose(1, 2).reshape(b, n, c))


class Attention(nn.Module):
    """Self-attention: fused ``qkv``, per-head RMS QK-norm, optional RoPE (temporal blocks)."""

    def __init__(
        self,
        dim: int,
        num_heads: int,
        qk_norm: bool = True,
        rope: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.qkv = nn.Linear(dim, dim * 3, bias=True)
        self.q_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.k_norm = RMSNorm(self.head_dim) if qk_norm else nn.Identity()
        self.proj = nn.Linear(dim, dim)
        self.rotary = rope  # a bound method of the model's RotaryEmbedding: not a submodule
        self.processor: Any = AttnProcessor()

    def set_processor(self, processor: Any) -> None:
        self.processor = processor

    def project(self, x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        """``x (B', N, C)`` -> ``q, k, v (B', heads, N, d)`` (QK-norm, then RoPE, as v1.2)."""
        b, n, _ = x.shape
        q, k, v = self.qkv(x).view(b, n, 3, self.num_heads, self.head_dim).permute(2, 0, 3, 1, 4)
        q, k = self.q_norm(q), self.k_norm(k)
        if self.rotary is not None:
            q, k = self.rotary(q), self.rotary(k)
        return q, k, v

    def forward(self, x: Tensor) -> Tensor:
        return self.processor(self, x)


class CrossAttention(nn.Module):
    """``MultiHeadCrossAttention``: video tokens attend to the caption tokens of their sample.

    The official code packs the valid caption tokens of the batch and uses an xformers
    block-diagonal mask; a per-sample key mask is the same computation.
    """

    def __init__(self, dim: int, num_heads: int) -> None:
        super().__init__()
        self.num_heads, self.head_dim = num_heads, dim // num_heads
        self.q_linear = nn.Linear(dim, dim)
        self.kv_linear = nn.Linear(dim, dim * 2)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, y: Tensor, mask: Tensor | None = None) -> Tensor:
        """``x (B,N,C)``, ``y (B,L,C)``, ``mask (B,L)`` bool (True = real token) -> ``(B,N,C)``."""
        b, n, c = x.shape
        q = self.q_linear(x).view(b, n, self.num_heads, self.head_dim).transpose(1, 2)
        k, v = self.kv_linear(y).view(b, y.shape[1], 2, self.num_heads, self.head_dim).unbind(2)
        bias = None if mask is None else mask[:, None, None, :].bool()
        out = F.scaled_dot_product_attention(q, k.transpose(1, 2), v.transpose(1, 2), bias)
        return self.proj(out.transpose(1, 2).reshape(b, n, c))


class Mlp(nn.Module):
    """timm ``Mlp``: ``fc1`` -> GELU (tanh approximation, as Open-Sora's ``approx_gelu``) -> ``fc2``."""

    def __init__(self, dim: int, hidden: int, out: int | None = None) -> None:
        super().__init__()
        self.fc1 = nn.Linear(dim, hidden)
        self.fc2 = nn.Linear(hidden, out or dim)

    def forward(self, x: Tensor) -> Tensor:
        return self.fc2(F.gelu(self.fc1(x), approximate="tanh"))


def sinusoid(t: Tensor, dim: int = 256, max_period: float = 10000.0) -> Tensor:
    """GLIDE timestep features ``[cos, sin]``: ``t (N,)`` -> ``(N, dim)`` float32."""
    half = dim // 2
    freqs = torch.exp(-math.log(max_period) * torch.arange(half, device=t.device) / half)
    args = t[:, None].float() * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], -1)


class TimestepEmbedder(nn.Module):
    """``TimestepEmbedder`` (also ``SizeEmbedder`` for fps): sinusoid(256) -> Linear-SiLU-Linear."""

    def __init__(self, hidden: int, freq_dim: int = 256) -> None:
        super().__init__()
        self.freq_dim = freq_dim
        self.mlp = nn.Sequential(nn.Linear(freq_dim, hidden), nn.SiLU(), nn.Linear(hidden, hidden))

    def forward(self, t: Tensor) -> Tensor:
        """``t (B,)`` (timesteps in [0, 1000], or fps) -> ``(B, hidden)``."""
        return self.mlp(sinusoid(t, self.freq_dim).to(self.mlp[0].weight.dtype))


class CaptionEmbedder(nn.Module):
    """``CaptionEmbedder``: projects T5 features; ``y_embedding`` is the learned *null* caption
    used for classifier-free guidance (a persistent buffer of ``token_num`` T5-sized vectors)."""

    def __init__(self, in_channels: int, hidden: int, token_num: int) -> None:
        super().__init__()
        self.y_proj = Mlp(in_channels, hidden, hidden)
        self.register_buffer("y_embedding", torch.randn(token_num, in_channels) / in_channels**0.5)

    def forward(self, y: Tensor) -> Tensor:
        return self.y_proj(y)


def position_embedding_2d(
    dim: int, h: int, w: int, scale: float, base_size: int, device: Any, dtype: torch.dtype
) -> Tensor:
    """``PositionEmbedding2D``: sin-cos of the (column, row) grid, shape ``(1, h*w, dim)``.

    Grid coordinates are ``arange(n) / scale * base_size / n`` with ``scale`` = sqrt(H·W) of the
    *pixel* video over ``input_sq_size`` (512) and ``base_size = round(sqrt(h*w))``: this is the
    resolution/aspect conditioning of v1.2. The first half encodes the column, the second the row
    (the official meshgrid swaps the names), each as ``[sin, cos]``.
    """
    half = dim // 2
    inv_freq = 1.0 / (10000 ** (torch.arange(0, half, 2, device=device).float() / half))
    rows = torch.arange(h, device=device) / scale * (base_size / h)
    cols = torch.arange(w, device=device) / scale * (base_size / w)
    col = cols[None, :].expand(h, w).reshape(-1)
    row = rows[:, None].expand(h, w).reshape(-1)

    def emb(p: Tensor) -> Tensor:
        out = p[:, None] * inv_freq[None]
        return torch.cat([out.sin(), out.cos()], -1)

    return torch.cat([emb(col), emb(row)], -1).unsqueeze(0).to(dtype)


def modulate(x: Tensor, shift: Tensor, scale: Tensor) -> Tensor:
    """``t2i_modulate``: ``x * (1 + scale) + shift``."""
    return x * (1 + scale) + shift


def frame_select(x_mask: Tensor, x: Tensor, x0: Tensor, frames: int) -> Tensor:
    """``t_mask_select``: per frame, ``x`` where ``x_mask`` (B, T) is True, else ``x0``.

    Shape: ``(B, T*S, C)`` both; returns the same.
    """
    b, n, c = x.shape
    keep = x_mask[:, :, None, None]
    out = torch.where(keep, x.view(b, frames, -1, c), x0.view(b, frames, -1, c))
    return out.view(b, n, c)


class FinalLayer(nn.Module):
    """``T2IFinalLayer``: adaLN (shift, scale from ``t``) + linear to patch pixels."""

    def __init__(self, hidden: int, num_patch: int, out_channels: int) -> None:
        super().__init__()
        self.norm_final = nn.LayerNorm(hidden, eps=1e-6, elementwise_affine=False)
        self.linear = nn.Linear(hidden, num_patch * out_channels)
        self.scale_shift_table = nn.Parameter(torch.randn(2, hidden) / hidden**0.5)

    def forward(
        self, x: Tensor, t: Tensor, x_mask: Tensor | None, t0: Tensor | None, frames: int
    ) -> Tensor:
        shift, scale = (self.scale_shift_table[None] + t[:, None]).chunk(2, 1)
        h = modulate(self.norm_final(x), shift, scale)
        if x_mask is not None:
            shift0, scale0 = (self.scale_shift_table[None] + t0[:, None]).chunk(2, 1)
            # as v1.2: the t0 branch normalises the *already modulated* tokens (the official
            # code overwrites x before computing x_zero); kept for weight compatibility
            h = frame_select(x_mask, h, modulate(self.norm_final(h), shift0, scale0), frames)
        return self.linear(h)
