"""Layer names and attention capture of the ``cogvideox-i2v`` adapter (a mixin).

Vid-Freeze's "attention that synthesizes motion" in CogVideoX is the joint text+video 3D
self-attention ``transformer_blocks.{i}.attn1``: one softmax over ``T`` text tokens followed by
``F_tok`` token frames of ``(h/p)·(w/p)`` tokens each, where ``F_tok = F_lat / patch_size_t``
(CogVideoX1.5 packs 2 latent frames into one token frame; 5b-I2V has no temporal patching).
Hidden states are the block outputs; VAE features are the encoder's down blocks. The recording
copy of ``CogVideoXAttnProcessor2_0`` (:class:`RecordingCogVideoXAttnProcessor`, the only stock
processor here that concatenates text and video and applies RoPE to the video part) is this
family's own.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .._shared.capture import (
    CaptureOptions,
    Capturing,
    capture_stock,
    frames_hook,
    joint_layer_names,
)
from .._shared.processors import attend, split_heads
from .._shared.recorder import Recorder, record_joint


class CogVideoXCapture(Capturing):
    """``layer_names`` and ``capture`` of the CogVideoX-I2V adapter."""

    def layer_names(self, kind: str) -> list[str]:
        what = "joint spatio-temporal attention"
        return joint_layer_names(self, kind, "transformer_blocks", "attn1", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs and joint attention maps; see :mod:`.._shared.capture` for the modes.

        Layout of a map's key axis: ``T`` text tokens, then ``F_tok`` token frames of
        ``h/p·w/p`` tokens (``Captured.layout``); ``exact`` and ``sampled`` maps are
        ``(B, heads, Q, T + F_tok·n)``; ``pooled`` maps ``(B, heads, F_tok, F_tok)``.
        """
        from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

        tr = self.pipe.transformer
        p_t = tr.config.patch_size_t or 1
        return capture_stock(
            self,
            tr,
            hidden,
            attention,
            options,
            stock=CogVideoXAttnProcessor2_0,
            hint=" (unfuse QKV projections first)",
            make=lambda rec, n, _m: RecordingCogVideoXAttnProcessor(rec, n),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=1, patch=p_t))],
        )


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
        query, key, value = split_heads(attn, hidden_states, hidden_states, batch)
        if image_rotary_emb is not None:
            query[:, :, text_len:] = apply_rotary_emb(query[:, :, text_len:], image_rotary_emb)
            if not attn.is_cross_attention:
                key[:, :, text_len:] = apply_rotary_emb(key[:, :, text_len:], image_rotary_emb)
        record_joint(self.recorder, self.name, query, key, attention_mask, text_len)
        out = attend(attn, query, key, value, attention_mask)
        encoder_hidden_states, out = out.split([text_len, out.size(1) - text_len], dim=1)
        return out, encoder_hidden_states
