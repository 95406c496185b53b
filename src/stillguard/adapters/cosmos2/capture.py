"""Layer names and capture of the ``cosmos2-i2v`` adapter (a mixin), and the recording processor of
Cosmos' video self-attention ``attn1``.

Each ``CosmosTransformerBlock`` has ``attn1`` (self-attention over the ``F_lat·h/2·w/2`` video
tokens, 3D RoPE, per-head RMS QK-norm) and ``attn2`` (T5 cross-attention), both
``CosmosAttnProcessor2_0``. Vid-Freeze's motion attention is ``attn1`` (capability
``attention-joint``, no text keys: ``layout.text = 0``). At the default 704×1280×93 there are
24·44·80 = 84,480 tokens: an ``exact`` map is out of reach (84,480² per head), ``sampled`` rows
(exact) or ``pooled`` (frame-pooled) fit.

:class:`RecordingCosmosAttnProcessor` leaves the output to the stock processor and recomputes q
and k as it does (projection, head split, QK-norm, diffusers' ``apply_rotary_emb``) for the shared
recorder (:func:`~.._shared.recorder.record_joint`).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from .._shared.capture import (
    CaptureOptions,
    Capturing,
    capture_stock,
    frames_hook,
    joint_layer_names,
)
from .._shared.processors import StockOutputProcessor
from .._shared.recorder import record_joint


class RecordingCosmosAttnProcessor(StockOutputProcessor):
    """``CosmosAttnProcessor2_0`` output plus recording of ``softmax(q kᵀ/√d)``."""

    def _record(
        self, attn: Any, hidden: Tensor, context: Tensor | None, mask: Tensor | None, rope: Any
    ) -> None:
        from diffusers.models.embeddings import apply_rotary_emb

        context = hidden if context is None else context
        query = attn.norm_q(attn.to_q(hidden).unflatten(2, (attn.heads, -1)).transpose(1, 2))
        key = attn.norm_k(attn.to_k(context).unflatten(2, (attn.heads, -1)).transpose(1, 2))
        if rope is not None:
            query = apply_rotary_emb(query, rope, use_real=True, use_real_unbind_dim=-2)
            key = apply_rotary_emb(key, rope, use_real=True, use_real_unbind_dim=-2)
        record_joint(self.recorder, self.name, query, key, mask, 0)


class Cosmos2Capture(Capturing):
    """``layer_names`` and ``capture`` of :class:`~.adapter.Cosmos2I2V` (needs ``self.pipe``)."""

    pipe: Any
    registry_name: str

    def layer_names(self, kind: str) -> list[str]:
        what = "full spatio-temporal video self-attention"
        return joint_layer_names(self, kind, "transformer_blocks", "attn1", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs ``(B, S, D)`` and ``attn1`` maps ``(B, heads, Q, S)`` (layout
        text=0); ``pooled``: ``(B, heads, F_lat, F_lat)``; VAE layers once per encoder chunk."""
        from diffusers.models.transformers.transformer_cosmos import CosmosAttnProcessor2_0

        model = self.pipe.transformer
        p_t = model.config.patch_size[0]
        return capture_stock(
            self,
            model,
            hidden,
            attention,
            options,
            stock=CosmosAttnProcessor2_0,
            make=lambda rec, n, m: RecordingCosmosAttnProcessor(rec, n, m.processor),
            hooks=lambda rec: [(model, frames_hook(rec, axis=2, patch=p_t))],
        )
