"""Layer names and capture of the ``hunyuan15-i2v`` adapter (a mixin), and the recording processor
of HunyuanVideo 1.5's joint attention.

Every one of the 54 dual-stream blocks runs ``HunyuanVideo15AttnProcessor2_0`` on ``[video tokens,
context tokens]`` (video first), the context being ``[729 SigLIP image tokens, ByT5 tokens, Qwen
tokens]`` with the valid ones first and the padding last (the transformer reorders them per item).
Its mask is ``m_i & m_j``: padded tokens neither attend nor are attended (their rows give 0).
:class:`RecordingHunyuan15AttnProcessor` recomputes q and k as the stock processor does (``to_q``/
``to_k`` + RMS QK-norm + RoPE on the video tokens, ``add_q_proj``/``add_k_proj`` + their norms on
the context), **drops the padded context tokens** (rows and keys: exactly the model's probabilities
for every other row, padded keys having probability 0 there) and records the map **context
first**, as stillguard's layout ``{"text": T, "frames": F, "per_frame": n}`` wants (``T`` = the
valid context tokens, image tokens included). The stock processor computes the output (see
:class:`~.._shared.processors.StockOutputProcessor`).

Sizing runs (fake tensors) cannot count the valid tokens: there every context token is kept (a map
a few rows larger than a real run's). Modes: see :mod:`.._shared.capture`; ``sampled`` draws video
rows, ``pooled`` pools video tokens per latent frame (the context left out).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

from .._shared.capture import (
    CaptureOptions,
    Capturing,
    capture_stock,
    frames_hook,
    joint_layer_names,
)
from .._shared.processors import StockOutputProcessor, qk_norm
from .._shared.recorder import record_joint


def valid_context(mask: Tensor | None, n: int) -> tuple[int, Tensor | None]:
    """How many context tokens to keep (the longest valid prefix over the batch) and an additive
    key mask ``(B, 1, 1, kept)`` for items with fewer valid tokens (``None`` when all have as
    many, the adapter's case: one prompt for the batch). Fake tensors: all ``n``, no mask."""
    if mask is None or is_fake(mask) or mask.device.type == "meta":
        return n, None
    counts = mask.bool().sum(-1)
    kept = int(counts.max())
    if int(counts.min()) == kept:
        return kept, None
    keep = mask[:, :kept].bool()[:, None, None]
    return kept, torch.zeros(keep.shape).masked_fill(~keep, float("-inf")).to(mask.device)


class RecordingHunyuan15AttnProcessor(StockOutputProcessor):
    """``HunyuanVideo15AttnProcessor2_0`` plus recording (stock signature, stock output)."""

    def _record(
        self,
        attn: Any,
        hidden: Tensor,
        context: Tensor | None,
        mask: Tensor | None,
        rope: tuple[Tensor, Tensor] | None,
    ) -> None:
        from diffusers.models.embeddings import apply_rotary_emb

        if context is None:  # every block attends jointly; nothing to record without a context
            return
        q = attn.to_q(hidden).unflatten(2, (attn.heads, -1))
        k = attn.to_k(hidden).unflatten(2, (attn.heads, -1))
        q, k = qk_norm(attn.norm_q, attn.norm_k, q, k)
        if rope is not None:
            q = apply_rotary_emb(q, rope, sequence_dim=1)
            k = apply_rotary_emb(k, rope, sequence_dim=1)
        kept, key_mask = valid_context(mask, context.shape[1])
        ctx = context[:, :kept]
        qc = attn.add_q_proj(ctx).unflatten(2, (attn.heads, -1))
        kc = attn.add_k_proj(ctx).unflatten(2, (attn.heads, -1))
        qc, kc = qk_norm(attn.norm_added_q, attn.norm_added_k, qc, kc)
        query = torch.cat([qc, q], 1).transpose(1, 2)  # context first: (B, heads, T + N, d)
        key = torch.cat([kc, k], 1).transpose(1, 2)
        if key_mask is not None:
            key_mask = torch.cat(
                [key_mask, key_mask.new_zeros(*key_mask.shape[:3], q.shape[1])], -1
            )
            key_mask = key_mask.to(query.dtype)
        record_joint(self.recorder, self.name, query, key, key_mask, kept)


class Hunyuan15Capture(Capturing):
    """``layer_names`` and ``capture`` of :class:`~.adapter.HunyuanVideo15I2V` (needs ``self.pipe``)."""

    pipe: Any
    registry_name: str

    def layer_names(self, kind: str) -> list[str]:
        what = "joint image+text+video attention"
        return joint_layer_names(self, kind, "transformer_blocks", "attn", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs (video stream ``(B, N, D)``) and joint maps ``(B, heads, Q, T +
        F_lat·h·w)`` (context first)."""
        from diffusers.models.transformers.transformer_hunyuan_video15 import (
            HunyuanVideo15AttnProcessor2_0,
        )

        tr = self.pipe.transformer
        p_t = tr.config.patch_size_t
        return capture_stock(
            self,
            tr,
            hidden,
            attention,
            options,
            stock=HunyuanVideo15AttnProcessor2_0,
            make=lambda rec, n, m: RecordingHunyuan15AttnProcessor(rec, n, m.processor),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=2, patch=p_t))],
        )
