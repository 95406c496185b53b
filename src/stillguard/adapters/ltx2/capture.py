"""Layer names and capture of the ``ltx2-i2v`` adapter (a mixin), and the recording processor of
LTX-2's video self-attention ``attn1``.

Each LTX-2 block has six attentions (video self ``attn1``, video→text ``attn2``, audio self and
audio→text, audio→video and video→audio cross-attention), all ``LTX2AudioVideoAttnProcessor``.
Vid-Freeze's motion attention is ``attn1``: full 3D self-attention over the ``F_lat·h·w`` video
tokens (split RoPE, QK RMS-norm across heads), no text keys (``layout.text = 0``). At the default
512x768x121 there are 16·16·24 = 6,144 tokens: an ``exact`` map is 6,144² per head (32 heads:
2.4 GB a layer in bf16), so ``sampled`` (exact rows) or ``pooled`` suit all 48 layers.

:class:`RecordingLTX2AttnProcessor` leaves the output to the stock processor (bit-identical
whatever attention backend is set) and recomputes q and k as the stock one does, with diffusers'
own RoPE functions, for the shared recorder (:func:`~.._shared.recorder.record_joint`). Its
signature is the stock one (``LTX2Attention.forward`` passes six arguments positionally and drops
keywords a processor does not declare). LTX-2.3/2.5 checkpoints (``perturbed_attn``) use
``LTX2PerturbedAttnProcessor``, which capture refuses (not covered).
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
from .._shared.recorder import own_saved_tensors, record_joint


class RecordingLTX2AttnProcessor(StockOutputProcessor):
    """``LTX2AudioVideoAttnProcessor`` output plus recording of ``softmax(q kᵀ/√d)``."""

    def __call__(  # type: ignore[override]
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        query_rotary_emb: Any = None,
        key_rotary_emb: Any = None,
    ) -> Tensor:
        if self.recorder.active:
            with own_saved_tensors():
                self._record_qk(attn, hidden_states, encoder_hidden_states, attention_mask,
                                query_rotary_emb, key_rotary_emb)  # fmt: skip
        return self.stock(
            attn, hidden_states, encoder_hidden_states, attention_mask, query_rotary_emb,
            key_rotary_emb,
        )  # fmt: skip

    def _record_qk(
        self, attn: Any, hidden: Tensor, context: Tensor | None, mask: Tensor | None,
        q_rope: Any, k_rope: Any,
    ) -> None:  # fmt: skip
        from diffusers.models.transformers.transformer_ltx2 import (
            apply_interleaved_rotary_emb,
            apply_split_rotary_emb,
        )

        context = hidden if context is None else context
        query, key = attn.norm_q(attn.to_q(hidden)), attn.norm_k(attn.to_k(context))
        if q_rope is not None:
            rope = (
                apply_split_rotary_emb
                if attn.rope_type == "split"
                else apply_interleaved_rotary_emb
            )
            query, key = rope(query, q_rope), rope(key, k_rope if k_rope is not None else q_rope)
        query = query.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        key = key.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        record_joint(self.recorder, self.name, query, key, mask, 0)


class LTX2Capture(Capturing):
    """``layer_names`` and ``capture`` of :class:`~.adapter.LTX2I2V` (needs ``self.pipe``)."""

    pipe: Any
    registry_name: str

    def layer_names(self, kind: str) -> list[str]:
        what = "joint spatio-temporal video self-attention"
        return joint_layer_names(self, kind, "transformer_blocks", "attn1", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs (the video stream ``(B, S, D)``) and ``attn1`` maps
        ``(B, heads, Q, F_lat·h·w)`` (layout text=0); ``pooled``: ``(B, heads, F_lat, F_lat)``."""
        from diffusers.models.transformers.transformer_ltx2 import LTX2AudioVideoAttnProcessor

        p_t = self.pipe.transformer_temporal_patch_size

        return capture_stock(
            self,
            self.pipe.transformer,
            hidden,
            attention,
            options,
            stock=LTX2AudioVideoAttnProcessor,
            make=lambda rec, n, m: RecordingLTX2AttnProcessor(rec, n, m.processor),
            hooks=lambda rec: [(self.pipe.transformer, packed_frames_hook(rec, patch=p_t))],
        )
