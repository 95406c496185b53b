"""Layer names and capture of the ``kandinsky5-i2v`` adapter (a mixin), and the recording
processor of Kandinsky 5's visual self-attention.

Layers: ``visual_transformer_blocks.i`` (block outputs ``(B, S, D)``),
``visual_transformer_blocks.i.self_attention`` (full 3D self-attention over the ``S = F_lat·h/2·w/2``
video tokens; the prompt enters through ``cross_attention``, the pooled CLIP vector through the
time modulation), ``vae.encoder.down_blocks.i`` (the HunyuanVideo VAE encoder). The text blocks
(``text_transformer_blocks``, the prompt alone) never see the photo and are not offered.

:class:`RecordingKandinskyAttnProcessor` keeps the stock ``Kandinsky5AttnProcessor`` in charge of
the output and recomputes q and k as it does - projections, per-head RMS norm in float32, the
rotary embedding, **and its rounding of q and k to bfloat16 after RoPE** (diffusers 0.42.1 does
this even in float32) - for the rows the mode records (the shared
:func:`~.._shared.self_attention.record_video_self`; layout ``text = 0``). Its signature is the
stock one: ``Kandinsky5Attention`` passes ``encoder_hidden_states``, ``sparse_params`` and
``rotary_emb`` by keyword.
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
from .._shared.processors import StockOutputProcessor
from .._shared.recorder import own_saved_tensors
from .._shared.self_attention import record_video_self


def _rotary(x: Tensor, rope: Tensor) -> Tensor:
    """Kandinsky 5's rotary embedding (``Kandinsky5AttnProcessor``), bfloat16 rounding included.
    ``x`` ``(B, S, heads, d)``, ``rope`` ``(B, S, 1, d/2, 2, 2)``."""
    pairs = x.reshape(*x.shape[:-1], -1, 1, 2).to(torch.float32)
    return (rope * pairs).sum(dim=-1).reshape(*x.shape).to(torch.bfloat16).type_as(x)


class RecordingKandinskyAttnProcessor(StockOutputProcessor):
    """Stock ``Kandinsky5AttnProcessor`` output plus probability recording (module docstring)."""

    def __call__(  # type: ignore[override]  # Kandinsky5Attention passes these by keyword
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        rotary_emb: Tensor | None = None,
        sparse_params: Any = None,
    ) -> Tensor:
        if self.recorder.active:
            with own_saved_tensors():
                self._record(attn, hidden_states, None, None, rotary_emb)
        return self.stock(
            attn, hidden_states, encoder_hidden_states=encoder_hidden_states,
            rotary_emb=rotary_emb, sparse_params=sparse_params,
        )  # fmt: skip

    def _record(
        self, attn: Any, hs: Tensor, _context: Tensor | None, _mask: Tensor | None, rope: Any
    ) -> None:
        rec = self.recorder
        rows = rec.rows(hs.shape[1], hs.device) if rec.mode == "sampled" else None
        q = attn.to_query(hs if rows is None else hs[:, rows])
        k = attn.to_key(hs)
        q = q.reshape(*q.shape[:-1], attn.num_heads, -1)
        k = k.reshape(*k.shape[:-1], attn.num_heads, -1)
        q = attn.query_norm(q.float()).type_as(q)
        k = attn.key_norm(k.float()).type_as(k)
        if rope is not None:
            q = _rotary(q, rope if rows is None else rope[:, rows])
            k = _rotary(k, rope)
        record_video_self(rec, self.name, q.transpose(1, 2), k.transpose(1, 2), rows)


class KandinskyCapture(Capturing):
    """:meth:`layer_names` and :meth:`capture` of :class:`~.adapter.Kandinsky5I2V`."""

    pipe: Any

    def layer_names(self, kind: str) -> list[str]:
        what = "full spatio-temporal video self-attention"
        return joint_layer_names(self, kind, "visual_transformer_blocks", "self_attention", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs and self-attention maps ``(B, heads, Q, S)`` (layout text=0);
        ``pooled`` maps are ``(B, heads, F_lat, F_lat)``."""
        from diffusers.models.transformers.transformer_kandinsky import Kandinsky5AttnProcessor

        tr = self.pipe.transformer
        p_t = tr.config.patch_size[0]
        return capture_stock(
            self, tr, hidden, attention, options, stock=Kandinsky5AttnProcessor,
            make=lambda rec, n, m: RecordingKandinskyAttnProcessor(rec, n, m.processor),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=1, patch=p_t))],
        )  # fmt: skip
