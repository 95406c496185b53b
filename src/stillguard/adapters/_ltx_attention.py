"""Recording attention for the flow-matching video transformers (LTX-Video, HunyuanVideo).

These transformers use diffusers' newer ``AttentionModuleMixin`` processors, which hand q, k, v to
``dispatch_attention_fn`` (SDPA, flash, ... chosen globally). To stay bit-identical whatever the
backend, the recording processors here do **not** recompute the output: they recompute q and k
exactly as the stock processor does (projections, QK-norm, RoPE), record
``softmax(q kᵀ / sqrt(d))`` for the rows the mode asks for, then call the *stock processor* for the
output. The price is a second q/k projection per recorded layer (small next to attention itself).

:func:`~._capture_recorder.record_joint` holds the mode logic shared by both models, on maps whose key axis is
laid out text first (``T`` text tokens, then ``F`` frames of ``n`` tokens; LTX's video
self-attention has ``T = 0``). Modes (see :mod:`._attention`): ``exact`` (all rows, text rows
included), ``sampled`` (``max_queries`` random *video* rows against all keys), ``pooled`` (video q
and k mean-pooled per latent frame: an ``F×F`` estimate, text left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import CapabilityError, InputError
from ..registry import close_matches
from ._attention import Recorder, _own_saved_tensors
from ._capture_recorder import record_joint
from ._capture_setup import capture_stock


def additive_mask(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A boolean keep-mask (True = attend) as an additive float mask; float masks pass through."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, float("-inf")
    )


#: the shared mode logic, under the name it had here
record_video_attention = record_joint


class RecordingLTXAttnProcessor:
    """LTX-Video ``attn1`` (video self-attention, RoPE, QK-norm across heads) plus recording.

    The stock ``LTXVideoAttnProcessor`` computes the output; the signature is the stock one because
    ``LTXAttention.forward`` drops keyword arguments a processor does not declare.
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
        image_rotary_emb: tuple[Tensor, Tensor] | None = None,
    ) -> Tensor:
        if self.recorder.active:
            # q/k are recomputed outside any surrounding checkpoint's bookkeeping (see
            # ._attention): a checkpoint re-run with the stock processor saves the same tensors
            with _own_saved_tensors():
                from diffusers.models.transformers.transformer_ltx import apply_rotary_emb

                context = hidden_states if encoder_hidden_states is None else encoder_hidden_states
                query = attn.norm_q(attn.to_q(hidden_states))
                key = attn.norm_k(attn.to_k(context))
                if image_rotary_emb is not None:
                    query = apply_rotary_emb(query, image_rotary_emb)
                    key = apply_rotary_emb(key, image_rotary_emb)
                query = query.unflatten(2, (attn.heads, -1)).transpose(1, 2)
                key = key.unflatten(2, (attn.heads, -1)).transpose(1, 2)
                record_joint(self.recorder, self.name, query, key, None, 0)
        return self.stock(
            attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb
        )


class LTXCapture:
    """``layer_names`` and ``capture`` of :class:`~.ltx_i2v.LTXI2V` (needs ``self.pipe``)."""

    pipe: Any
    registry_name: str

    def layer_names(self, kind: str) -> list[str]:
        n = len(self.pipe.transformer.transformer_blocks)
        if kind == "hidden":
            return [f"transformer_blocks.{i}" for i in range(n)]
        if kind in ("attention", "attention-joint"):
            return [f"transformer_blocks.{i}.attn1" for i in range(n)]
        if kind == "vae":
            blocks = self.pipe.vae.encoder.down_blocks
            return [f"vae.encoder.down_blocks.{i}" for i in range(len(blocks))]
        if kind in ("attention-temporal", "attention-spatial"):
            raise CapabilityError(
                f"{self.registry_name} has joint spatio-temporal video attention "
                f"only (no {kind}): use kind='attention'"
            )
        kinds = ["hidden", "attention", "vae"]
        raise InputError(f"unknown layer kind {kind!r}: {close_matches(kind, kinds)}")

    def capture(
        self,
        hidden: Sequence[str] = (),
        attention: Sequence[str] = (),
        *,
        mode: str = "exact",
        max_queries: int = 256,
        generator: torch.Generator | None = None,
    ) -> Any:
        """Record block outputs and ``attn1`` maps ``(B, heads, Q, F_lat·h·w)`` (layout text=0)."""
        from diffusers.models.transformers.transformer_ltx import LTXVideoAttnProcessor

        p_t = self.pipe.transformer_temporal_patch_size

        def layout(rec: Recorder) -> Any:
            def hook(_m: Any, args: tuple, kwargs: dict) -> None:
                tokens = kwargs.get("hidden_states", args[0] if args else None)
                frames = kwargs.get("num_frames") or 1  # LTX's tokens are flat: frames come apart
                rec.context.update(token_frames=frames // p_t, batch=tokens.shape[0])

            return [(self.pipe.transformer, hook)]

        return capture_stock(
            self,
            self.pipe.transformer,
            hidden,
            attention,
            (mode, max_queries, generator),
            stock=LTXVideoAttnProcessor,
            make=lambda rec, n, m: RecordingLTXAttnProcessor(rec, n, m.processor),
            hooks=layout,
        )
