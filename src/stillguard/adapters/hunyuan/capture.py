"""Recording the joint text+video attention of HunyuanVideo's dual- and single-stream blocks.

``HunyuanVideoAttnProcessor2_0`` attends over ``[video tokens, text tokens]`` (video first): the
dual-stream blocks project text with ``add_q/k/v_proj`` and QK-norm it with ``norm_added_q/k``; the
single-stream blocks project the concatenation with the same ``to_q/k``. RoPE touches video tokens
only. The recorder recomputes q and k the same way, then **reorders both axes text first** so that
the maps follow stillguard's layout (``{"text": T, "frames": F, "per_frame": n}``); the Frobenius
norm and row sums are unchanged by that permutation. Padded text tokens (mask 0) get probability 0
as in the model. The stock processor computes the output (see
:class:`~.._shared.processors.StockOutputProcessor`).
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
from .._shared.processors import StockOutputProcessor, qk_norm
from .._shared.recorder import record_joint


def additive_mask(mask: Tensor | None, dtype: torch.dtype) -> Tensor | None:
    """A boolean keep-mask (True = attend) as an additive float mask; float masks pass through."""
    if mask is None or mask.dtype != torch.bool:
        return mask
    return torch.zeros(mask.shape, dtype=dtype, device=mask.device).masked_fill(
        ~mask, float("-inf")
    )


class RecordingHunyuanAttnProcessor(StockOutputProcessor):
    """``HunyuanVideoAttnProcessor2_0`` plus recording (stock signature, stock output)."""

    def _record(
        self,
        attn: Any,
        hidden: Tensor,
        text: Tensor | None,
        mask: Tensor | None,
        rope: tuple[Tensor, Tensor] | None,
    ) -> None:
        from diffusers.models.embeddings import apply_rotary_emb

        if text is None:  # every Hunyuan attention layer is joint; nothing to record without text
            return
        n_text, n_video = text.shape[1], hidden.shape[1]
        dual = attn.add_q_proj is not None
        states = hidden if dual else torch.cat([hidden, text], 1)
        q = attn.to_q(states).unflatten(2, (attn.heads, -1))
        k = attn.to_k(states).unflatten(2, (attn.heads, -1))
        q, k = qk_norm(attn.norm_q, attn.norm_k, q, k)
        qv, kv = q[:, :n_video], k[:, :n_video]
        if rope is not None:
            qv = apply_rotary_emb(qv, rope, sequence_dim=1)
            kv = apply_rotary_emb(kv, rope, sequence_dim=1)
        if dual:
            qt = attn.add_q_proj(text).unflatten(2, (attn.heads, -1))
            kt = attn.add_k_proj(text).unflatten(2, (attn.heads, -1))
            qt, kt = qk_norm(attn.norm_added_q, attn.norm_added_k, qt, kt)
        else:
            qt, kt = q[:, n_video:], k[:, n_video:]
        query = torch.cat([qt, qv], 1).transpose(1, 2)  # text first: (B, heads, T + N, d)
        key = torch.cat([kt, kv], 1).transpose(1, 2)
        if mask is not None:  # (B, 1, 1, N + T), video first -> text first
            mask = torch.cat([mask[..., n_video:], mask[..., :n_video]], -1)
        record_joint(self.recorder, self.name, query, key, additive_mask(mask, query.dtype), n_text)


class HunyuanCapture(Capturing):
    """``layer_names`` and ``capture`` of :class:`~.adapter.HunyuanI2V` (needs ``self.pipe``)."""

    pipe: Any
    registry_name: str

    def layer_names(self, kind: str) -> list[str]:
        tr = self.pipe.transformer
        blocks = [f"transformer_blocks.{i}" for i in range(len(tr.transformer_blocks))]
        blocks += [
            f"single_transformer_blocks.{i}" for i in range(len(tr.single_transformer_blocks))
        ]
        return joint_layer_names(self, kind, blocks, "attn", "joint text+video attention")

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs (video stream) and joint maps ``(B, heads, Q, T + F_lat·n)``."""
        from diffusers.models.transformers.transformer_hunyuan_video import (
            HunyuanVideoAttnProcessor2_0,
        )

        tr = self.pipe.transformer
        p_t = tr.config.patch_size_t
        return capture_stock(
            self,
            tr,
            hidden,
            attention,
            options,
            stock=HunyuanVideoAttnProcessor2_0,
            make=lambda rec, n, m: RecordingHunyuanAttnProcessor(rec, n, m.processor),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=2, patch=p_t))],
        )
