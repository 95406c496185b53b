"""DynamiCrafter's transformer blocks: spatial and temporal transformers with dual cross-attention.

Source: Doubiiu/DynamiCrafter ``lvdm/modules/attention.py`` (``CrossAttention``,
``BasicTransformerBlock``, ``SpatialTransformer``, ``TemporalTransformer``, ``GEGLU``,
``FeedForward``); parameter names and shapes follow it so the official ``model.ckpt`` loads
strictly. Every attention is a diffusers ``Attention`` (its ``to_q``/``to_k``/``to_v``/``to_out.0``
keys equal the official ones: q/k/v without bias, output with bias), so the stock
``AttnProcessor2_0`` and stillguard's recording processors run on it unchanged.

* Self-attention (spatial ``attn1``; both ``attn1`` and ``attn2`` of a temporal block, whose
  ``temporal_selfatt_only`` makes the second one self-attention too) uses ``AttnProcessor2_0``.
* The spatial ``attn2`` is DynamiCrafter's dual cross-attention (:class:`DualCrossAttnProcessor`):
  the context is ``[text tokens (text_len) | image tokens]``; text goes through ``to_k``/``to_v``,
  image tokens through ``to_k_ip``/``to_v_ip``, and the two outputs are summed, the image one scaled
  by ``(tanh(alpha) + 1)`` when the scale is learnable (the 256 model) and by 1 otherwise.

Shapes: spatial blocks see ``(B·F, h·w, C)`` tokens, temporal blocks ``(B·h·w, F, C)``.
The temporal relative-position and causal-mask options of the official code are off in every
released config (``use_relative_position: false``, ``use_causal_attention: False``) and are not
implemented.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

TEXT_LEN = 77  # the official CrossAttention's hard-coded text_context_len


def _heads(t: Tensor, heads: int) -> Tensor:
    b, n, _ = t.shape
    return t.view(b, n, heads, -1).transpose(1, 2)


def _merge(t: Tensor) -> Tensor:
    b, h, n, d = t.shape
    return t.transpose(1, 2).reshape(b, n, h * d)


class DualCrossAttnProcessor:
    """Text cross-attention plus image cross-attention with its own keys/values (see module doc)."""

    def __call__(
        self,
        attn: nn.Module,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
    ) -> Tensor:
        ctx = hidden_states if encoder_hidden_states is None else encoder_hidden_states
        n_text = attn.text_len
        text, image = ctx[:, :n_text], ctx[:, n_text:]
        q = _heads(attn.to_q(hidden_states), attn.heads)
        k, v = _heads(attn.to_k(text), attn.heads), _heads(attn.to_v(text), attn.heads)
        out = _merge(F.scaled_dot_product_attention(q, k, v))
        if attn.image_cross_attention and image.shape[1] > 0:
            k_ip = _heads(attn.to_k_ip(image), attn.heads)
            v_ip = _heads(attn.to_v_ip(image), attn.heads)
            out_ip = _merge(F.scaled_dot_product_attention(q, k_ip, v_ip))
            if attn.alpha is not None:
                out_ip = out_ip * (torch.tanh(attn.alpha) + 1)
            out = out + out_ip
        return attn.to_out[1](attn.to_out[0](out))


def attention(dim: int, heads: int, dim_head: int, context_dim: int | None = None) -> nn.Module:
    """A diffusers ``Attention`` with DynamiCrafter's layout (no q/k/v bias, output bias)."""
    from diffusers.models.attention_processor import Attention, AttnProcessor2_0

    return Attention(
        dim, cross_attention_dim=context_dim, heads=heads, dim_head=dim_head, bias=False,
        out_bias=True, processor=AttnProcessor2_0(),
    )  # fmt: skip


def dual_cross_attention(
    dim: int, heads: int, dim_head: int, context_dim: int, image: bool, learnable: bool
) -> nn.Module:
    """The spatial ``attn2``: ``to_k_ip``/``to_v_ip`` (+ ``alpha`` if learnable) on top of text."""
    attn = attention(dim, heads, dim_head, context_dim)
    attn.text_len = TEXT_LEN
    attn.image_cross_attention = image
    if image:
        attn.to_k_ip = nn.Linear(context_dim, heads * dim_head, bias=False)
        attn.to_v_ip = nn.Linear(context_dim, heads * dim_head, bias=False)
    attn.alpha = nn.Parameter(torch.zeros(())) if image and learnable else None
    attn.set_processor(DualCrossAttnProcessor())
    return attn


class GEGLU(nn.Module):
    def __init__(self, dim_in: int, dim_out: int) -> None:
        super().__init__()
        self.proj = nn.Linear(dim_in, dim_out * 2)

    def forward(self, x: Tensor) -> Tensor:
        x, gate = self.proj(x).chunk(2, dim=-1)
        return x * F.gelu(gate)


class FeedForward(nn.Module):
    """``net.0`` GEGLU, ``net.1`` dropout, ``net.2`` linear (gated_ff=True in the official block)."""

    def __init__(self, dim: int, mult: int = 4) -> None:
        super().__init__()
        self.net = nn.Sequential(
            GEGLU(dim, dim * mult), nn.Dropout(0.0), nn.Linear(dim * mult, dim)
        )

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)


class BasicTransformerBlock(nn.Module):
    """``x + attn1(norm1 x)``, ``x + attn2(norm2 x, context)``, ``x + ff(norm3 x)``."""

    def __init__(
        self,
        dim: int,
        heads: int,
        dim_head: int,
        context_dim: int | None,
        image_cross_attention: bool = False,
        learnable_scale: bool = False,
    ) -> None:
        super().__init__()
        self.attn1 = attention(dim, heads, dim_head)
        self.ff = FeedForward(dim)
        if context_dim is None:  # temporal blocks: attn2 is a second self-attention
            self.attn2 = attention(dim, heads, dim_head)
        else:
            self.attn2 = dual_cross_attention(
                dim, heads, dim_head, context_dim, image_cross_attention, learnable_scale
            )
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)

    def forward(self, x: Tensor, context: Tensor | None = None) -> Tensor:
        x = self.attn1(self.norm1(x)) + x
        x = self.attn2(self.norm2(x), encoder_hidden_states=context) + x
        return self.ff(self.norm3(x)) + x


class SpatialTransformer(nn.Module):
    """Attention over the ``h·w`` positions of each frame. ``(B·F, C, h, w)`` -> same."""

    def __init__(
        self,
        channels: int,
        heads: int,
        dim_head: int,
        context_dim: int,
        image_cross_attention: bool,
        learnable_scale: bool,
    ) -> None:
        super().__init__()
        inner = heads * dim_head
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        self.proj_in = nn.Linear(channels, inner)  # use_linear: true in every released config
        self.transformer_blocks = nn.ModuleList(
            [
                BasicTransformerBlock(
                    inner, heads, dim_head, context_dim, image_cross_attention, learnable_scale
                )
            ]
        )
        self.proj_out = nn.Linear(inner, channels)

    def forward(self, x: Tensor, context: Tensor) -> Tensor:
        b, c, h, w = x.shape
        y = self.proj_in(self.norm(x).flatten(2).transpose(1, 2))
        for block in self.transformer_blocks:
            y = block(y, context)
        y = self.proj_out(y).transpose(1, 2).reshape(b, c, h, w)
        return y + x


class TemporalTransformer(nn.Module):
    """Self-attention over the ``F`` frames at each position. ``(B, C, F, h, w)`` -> same.

    ``use_linear=False`` (only ``init_attn``) projects with 1×1 ``Conv1d`` as the official code.
    """

    def __init__(self, channels: int, heads: int, dim_head: int, use_linear: bool = True) -> None:
        super().__init__()
        inner = heads * dim_head
        self.use_linear = use_linear
        self.norm = nn.GroupNorm(32, channels, eps=1e-6)
        if use_linear:
            self.proj_in, self.proj_out = nn.Linear(channels, inner), nn.Linear(inner, channels)
        else:
            self.proj_in = nn.Conv1d(channels, inner, 1)
            self.proj_out = nn.Conv1d(inner, channels, 1)
        self.transformer_blocks = nn.ModuleList(
            [BasicTransformerBlock(inner, heads, dim_head, None)]
        )

    def forward(self, x: Tensor) -> Tensor:
        b, c, f, h, w = x.shape
        y = self.norm(x).permute(0, 3, 4, 1, 2).reshape(b * h * w, c, f)  # (b h w) c t
        y = self.proj_in(y.transpose(1, 2)) if self.use_linear else self.proj_in(y).transpose(1, 2)
        for block in self.transformer_blocks:
            y = block(y)
        if self.use_linear:
            y = self.proj_out(y).transpose(1, 2)
        else:
            y = self.proj_out(y.transpose(1, 2))
        y = y.reshape(b, h, w, c, f).permute(0, 3, 4, 1, 2)
        return y + x
