"""Recording video self-attention that has no text keys: Wan-style ``attn1`` (Wan 2.1/2.2's
``WanAttnProcessor`` and SkyReels-V2's ``SkyReelsV2AttnProcessor``, the same code) and the
visual self-attention of Kandinsky 5 (its recording processor is the family's own, its maps go
through :func:`record_video_self`).

Such attention is full 3D self-attention over the video tokens only (RoPE on q and k, RMS norm);
text (and CLIP) tokens enter through a separate cross-attention, so the recorded maps have no text
keys: ``layout = {"text": 0, "frames": F_tok, "per_frame": h/2·w/2}``.

The recording processors leave the stock processor in charge of the output (they call it
unchanged, so outputs stay bit-identical whatever attention backend is set) and recompute q and k
only for what the mode records (:func:`record_video_self`):

* ``exact``: all query rows against all keys (``S×S``; only for small models);
* ``sampled``: ``max_queries`` random rows against all keys; ``to_q`` runs on those rows only,
  so the extra cost is one ``to_k`` projection plus ``Q×S`` logits per layer (Wan2.1 at 480p:
  S = 21·30·52 = 32,760 video tokens);
* ``pooled``: q and k mean-pooled per latent frame, ``F×F`` maps (an estimate, see
  :mod:`.capture`).

The frame count comes from ``recorder.context["token_frames"]`` (the adapter's pre-hook). Both
pipelines pass no attention mask to ``attn1`` (SkyReels builds a block-causal one only when
``num_frame_per_block > 1``, which its adapter refuses), so none is applied.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .processors import StockOutputProcessor, interleaved_rope
from .recorder import Recorder, attention_probs, pool_per_frame


def record_video_self(rec: Recorder, name: str, q: Tensor, k: Tensor, rows: Tensor | None) -> None:
    """Record one map of video self-attention (no text keys) for the recorder's mode.

    ``q``: ``(B, heads, Q, d)``, the query rows ``rows`` (``sampled``) or all ``S`` of them
    (``rows=None``); ``k``: ``(B, heads, S, d)``. The frame count comes from
    ``rec.context["token_frames"]``; ``pooled`` mean-pools q and k per frame (``F×F`` maps).
    """
    n_tok = k.shape[2]
    frames = rec.context.get("token_frames", 1)
    layout = {"text": 0, "frames": frames, "per_frame": n_tok // frames}
    if rec.mode == "pooled":
        q, k = pool_per_frame(q, frames), pool_per_frame(k, frames)
        layout = {"text": 0, "frames": frames, "per_frame": 1}
        rows = torch.arange(frames, device=k.device)
    elif rows is None:
        rows = torch.arange(n_tok, device=k.device)
    rec.add_attention(name, attention_probs(q, k, None), rows, layout)


class RecordingWanAttnProcessor(StockOutputProcessor):
    """Stock Wan-style ``attn1`` output plus probability recording (see the module docstring)."""

    def _qk(self, attn: Any, hs: Tensor, rows: Tensor | None) -> tuple[Tensor, Tensor]:
        if getattr(attn, "fused_projections", False):
            q, k, _ = attn.to_qkv(hs).chunk(3, dim=-1)
            q = q if rows is None else q[:, rows]
        else:
            q = attn.to_q(hs if rows is None else hs[:, rows])
            k = attn.to_k(hs)
        q = attn.norm_q(q).unflatten(2, (attn.heads, -1))
        k = attn.norm_k(k).unflatten(2, (attn.heads, -1))
        return q, k

    def _record(
        self,
        attn: Any,
        hs: Tensor,
        _context: Tensor | None,
        _mask: Tensor | None,
        rotary_emb: tuple[Tensor, Tensor] | None,
    ) -> None:
        rec = self.recorder
        rows = rec.rows(hs.shape[1], hs.device) if rec.mode == "sampled" else None
        q, k = self._qk(attn, hs, rows)
        if rotary_emb is not None:
            cos, sin = rotary_emb
            qc, qs = (cos, sin) if rows is None else (cos[:, rows], sin[:, rows])
            q, k = interleaved_rope(q, qc, qs), interleaved_rope(k, cos, sin)
        record_video_self(rec, self.name, q.transpose(1, 2), k.transpose(1, 2), rows)
