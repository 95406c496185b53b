"""Recording copies of diffusers' stock attention processors (see :mod:`.capture` for the idea).

Each keeps the stock ``__call__`` signature and computes the output with SDPA from the very same
q, k, v (bit-identical outputs), then records ``softmax(q kᵀ / sqrt(d))`` for the rows the
:class:`~.recorder.Recorder`'s mode asks for: :class:`RecordingAttnProcessor` (the legacy
``Attention`` family: SVD's UNet, DynamiCrafter's own blocks) computes the output itself;
:class:`StockOutputProcessor` (the newer processors of LTX-Video, HunyuanVideo and Wan) leaves it
to the stock processor. :func:`split_heads`, :func:`qk_norm`, :func:`attend` and
:func:`interleaved_rope` are the steps the stock processors take, for families that write their
own recording processor.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from .recorder import Recorder, own_saved_tensors, record_factorised


def split_heads(attn: Any, states: Tensor, context: Tensor, batch: int) -> tuple[Tensor, ...]:
    """q (from ``states``), k and v (from ``context``) of a legacy ``Attention``, split into heads
    ``(B, heads, N, d)`` and QK-normed, as the stock ``*AttnProcessor2_0`` computes them."""
    query, key, value = attn.to_q(states), attn.to_k(context), attn.to_v(context)
    head_dim = key.shape[-1] // attn.heads
    query, key, value = (
        t.view(batch, -1, attn.heads, head_dim).transpose(1, 2) for t in (query, key, value)
    )
    query, key = qk_norm(attn.norm_q, attn.norm_k, query, key)
    return query, key, value


def qk_norm(norm_q: Any, norm_k: Any, query: Tensor, key: Tensor) -> tuple[Tensor, Tensor]:
    """``query`` and ``key`` through their QK-norms where the module has them (else unchanged)."""
    return (
        query if norm_q is None else norm_q(query),
        key if norm_k is None else norm_k(key),
    )


def interleaved_rope(x: Tensor, cos: Tensor, sin: Tensor) -> Tensor:
    """The interleaved rotary embedding of Wan's ``WanAttnProcessor`` (also SANA-Video's linear
    attention), out of place: pairs ``(x[2i], x[2i+1])`` rotated by ``cos[..., 2i]``,
    ``sin[..., 2i+1]``."""
    x1, x2 = x.unflatten(-1, (-1, 2)).unbind(-1)
    c, s = cos[..., 0::2], sin[..., 1::2]
    # out[..., 0::2] = even, out[..., 1::2] = odd, without in-place writes
    return torch.stack([x1 * c - x2 * s, x1 * s + x2 * c], -1).flatten(-2).type_as(x)


def attend(attn: Any, query: Tensor, key: Tensor, value: Tensor, mask: Tensor | None) -> Tensor:
    """SDPA on the heads and the output projection (``to_out``), as the stock processors do."""
    out = F.scaled_dot_product_attention(
        query, key, value, attn_mask=mask, dropout_p=0.0, is_causal=False
    )
    out = out.transpose(1, 2).flatten(2).to(query.dtype)
    return attn.to_out[1](attn.to_out[0](out))


class RecordingAttnProcessor:
    """``AttnProcessor2_0`` (the legacy ``Attention`` family, e.g. SVD's UNet) plus recording.

    ``temporal`` marks attention whose tokens are frames (SVD's temporal blocks: the batch axis is
    ``B·h·w``); there ``pooled`` mean-pools q and k over the spatial positions of each video.
    """

    def __init__(self, recorder: Recorder, name: str, temporal: bool = False) -> None:
        self.recorder = recorder
        self.name = name
        self.temporal = temporal

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b4, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(b4, channel, height * width).transpose(1, 2)
        batch, seq_len, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        query, key, value = split_heads(attn, hidden_states, encoder_hidden_states, batch)
        record_factorised(
            self.recorder, self.name, query, key, attention_mask,
            temporal=self.temporal, tokens="pixels of one frame",
        )  # fmt: skip
        out = attend(attn, query, key, value, attention_mask)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b4, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor


class StockOutputProcessor:
    """Base of the recording processors that leave the output to the stock processor they replace
    (the newer ``AttentionModuleMixin`` processors of LTX-Video, HunyuanVideo and Wan, which may
    dispatch to any attention backend): the output stays bit-identical whatever the backend, and
    :meth:`_record` recomputes q and k only for what the mode records, under its own saved-tensor
    hooks (outside a surrounding checkpoint's bookkeeping; see :mod:`.capture`).

    The signature is the stock one: the modules pass these arguments positionally, and
    ``Attention.forward`` drops keyword arguments a processor does not declare.
    """

    def __init__(self, recorder: Recorder, name: str, stock: Any) -> None:
        self.recorder = recorder
        self.name = name
        self.stock = stock

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        image_rotary_emb: Any = None,
    ) -> Any:
        if self.recorder.active:
            with own_saved_tensors():
                self._record(
                    attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb
                )
        return self.stock(
            attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb
        )

    def _record(
        self, attn: Any, hidden: Tensor, context: Tensor | None, mask: Tensor | None, rope: Any
    ) -> None:
        raise NotImplementedError  # pragma: no cover - every subclass defines it
