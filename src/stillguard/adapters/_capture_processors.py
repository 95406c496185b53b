"""Recording copies of diffusers' stock attention processors (see :mod:`._attention`).

Each keeps the stock ``__call__`` signature and computes the output with SDPA from the very same
q, k, v (bit-identical outputs), then records ``softmax(q kᵀ / sqrt(d))`` for the rows the
:class:`~._capture_recorder.Recorder`'s mode asks for.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError
from ._capture_recorder import Recorder, attention_probs, own_saved_tensors


class RecordingCogVideoXAttnProcessor:
    """``CogVideoXAttnProcessor2_0`` plus probability recording (see the module docstring)."""

    def __init__(self, recorder: Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        image_rotary_emb: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        from diffusers.models.embeddings import apply_rotary_emb

        text_len = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch, seq_len, _ = hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            query[:, :, text_len:] = apply_rotary_emb(query[:, :, text_len:], image_rotary_emb)
            if not attn.is_cross_attention:
                key[:, :, text_len:] = apply_rotary_emb(key[:, :, text_len:], image_rotary_emb)
        self._record(query, key, attention_mask, text_len)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        encoder_hidden_states, out = out.split([text_len, out.size(1) - text_len], dim=1)
        return out, encoder_hidden_states

    def _record(self, query: Tensor, key: Tensor, mask: Tensor | None, text_len: int) -> None:
        if self.recorder.active:
            with own_saved_tensors():
                self._record_probs(query, key, mask, text_len)

    def _record_probs(self, query: Tensor, key: Tensor, mask: Tensor | None, text_len: int) -> None:
        rec = self.recorder
        n_video = query.shape[2] - text_len
        frames = rec.context.get("token_frames", 1)
        layout = {"text": text_len, "frames": frames, "per_frame": n_video // frames}
        if rec.mode == "exact":
            rows = torch.arange(query.shape[2], device=query.device)
            probs = attention_probs(query, key, mask)
        elif rec.mode == "sampled":
            rows = text_len + rec.rows(n_video, query.device)
            probs = attention_probs(
                query[:, :, rows], key, None if mask is None else mask[:, :, rows]
            )
        else:
            b, h, _, d = query.shape
            qp = query[:, :, text_len:].reshape(b, h, frames, -1, d).mean(3)
            kp = key[:, :, text_len:].reshape(b, h, frames, -1, d).mean(3)
            rows = torch.arange(frames, device=query.device)
            probs = attention_probs(qp, kp, None)
            layout = {"text": 0, "frames": frames, "per_frame": 1}
        rec.add_attention(self.name, probs, rows, layout)


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
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        self._record(query, key, attention_mask)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = out.to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b4, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _record(self, query: Tensor, key: Tensor, mask: Tensor | None) -> None:
        if self.recorder.active:
            with own_saved_tensors():
                self._record_probs(query, key, mask)

    def _record_probs(self, query: Tensor, key: Tensor, mask: Tensor | None) -> None:
        rec = self.recorder
        n = query.shape[2]
        layout = {
            "text": 0,
            "frames": n if self.temporal else 1,
            "per_frame": 1 if self.temporal else n,
        }
        if rec.mode == "exact":
            rows = torch.arange(n, device=query.device)
            probs = attention_probs(query, key, mask)
        elif rec.mode == "sampled":
            rows = rec.rows(n, query.device)
            probs = attention_probs(
                query[:, :, rows], key, None if mask is None else mask[:, :, rows]
            )
        else:
            if not self.temporal:
                raise InputError(
                    f"capture(mode='pooled') needs frame tokens; {self.name} is spatial attention "
                    "(its tokens are pixels of one frame): use mode='exact' or 'sampled' there"
                )
            videos = rec.context.get("batch", 1)
            bhw, h, f, d = query.shape
            qp = query.reshape(videos, bhw // videos, h, f, d).mean(1)
            kp = key.reshape(videos, bhw // videos, h, f, d).mean(1)
            rows = torch.arange(f, device=query.device)
            probs = attention_probs(qp, kp, None)
        rec.add_attention(self.name, probs, rows, layout)
