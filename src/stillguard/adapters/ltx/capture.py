"""Layer names and capture of the ``ltx-i2v`` adapter (a mixin), and the recording processor of
LTX-Video's video self-attention ``attn1``.

LTX-Video uses diffusers' newer ``AttentionModuleMixin`` processors, which hand q, k, v to
``dispatch_attention_fn`` (SDPA, flash, ... chosen globally). To stay bit-identical whatever the
backend, :class:`RecordingLTXAttnProcessor` does **not** recompute the output: it recomputes q and
k exactly as the stock processor does (projections, QK-norm, RoPE), records
``softmax(q kᵀ / sqrt(d))`` for the rows the mode asks for (the shared
:func:`~.._shared.recorder.record_joint`, with no text keys: ``T = 0``), then calls the *stock
processor* for the output. The price is a second q/k projection per recorded layer (small next to
attention itself). Modes: see :mod:`.._shared.capture`.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from torch import Tensor

from .._shared.capture import (
    CaptureOptions,
    Capturing,
    capture_stock,
    joint_layer_names,
    packed_frames_hook,
)
from .._shared.processors import StockOutputProcessor
from .._shared.recorder import record_joint


class RecordingLTXAttnProcessor(StockOutputProcessor):
    """LTX-Video ``attn1`` (video self-attention, RoPE, QK-norm across heads) plus recording.

    The stock ``LTXVideoAttnProcessor`` computes the output; the signature is the stock one because
    ``LTXAttention.forward`` drops keyword arguments a processor does not declare.
    """

    def _record(
        self, attn: Any, hidden: Tensor, context: Tensor | None, mask: Tensor | None, rope: Any
    ) -> None:
        from diffusers.models.transformers.transformer_ltx import apply_rotary_emb

        context = hidden if context is None else context
        query = attn.norm_q(attn.to_q(hidden))
        key = attn.norm_k(attn.to_k(context))
        if rope is not None:
            query = apply_rotary_emb(query, rope)
            key = apply_rotary_emb(key, rope)
        query = query.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        key = key.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        record_joint(self.recorder, self.name, query, key, None, 0)


class LTXCapture(Capturing):
    """``layer_names`` and ``capture`` of :class:`~.adapter.LTXI2V` (needs ``self.pipe``)."""

    pipe: Any
    registry_name: str

    def layer_names(self, kind: str) -> list[str]:
        what = "joint spatio-temporal video attention"
        return joint_layer_names(self, kind, "transformer_blocks", "attn1", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs and ``attn1`` maps ``(B, heads, Q, F_lat·h·w)`` (layout text=0)."""
        from diffusers.models.transformers.transformer_ltx import LTXVideoAttnProcessor

        p_t = self.pipe.transformer_temporal_patch_size

        return capture_stock(
            self,
            self.pipe.transformer,
            hidden,
            attention,
            options,
            stock=LTXVideoAttnProcessor,
            make=lambda rec, n, m: RecordingLTXAttnProcessor(rec, n, m.processor),
            hooks=lambda rec: [(self.pipe.transformer, packed_frames_hook(rec, patch=p_t))],
        )
