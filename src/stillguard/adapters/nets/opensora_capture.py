"""Attention recording for STDiT3's spatial and temporal self-attention.

A :class:`RecordingProcessor` replaces a block's default processor during
:meth:`~stillguard.adapters.open_sora.OpenSora12.capture`; it runs the very same code (it only
overrides :meth:`AttnProcessor.inspect`), so outputs stay bit-identical, and records
``softmax(q kᵀ / sqrt(d))`` of the final (QK-normed, RoPE-rotated) q and k, with autograd.

Shapes (B videos, T latent frames, S = h·w/4 tokens per frame):
    * temporal blocks attend over frames: batch axis ``B·S``, maps ``(B·S, heads, Q, T)``; layout
      ``{"text": 0, "frames": T, "per_frame": 1}``; ``pooled`` averages q and k over the S
      positions of each video first, giving ``(B, heads, T, T)``;
    * spatial blocks attend within a frame: batch axis ``B·T``, maps ``(B·T, heads, Q, S)``;
      layout ``{"text": 0, "frames": 1, "per_frame": S}``; ``pooled`` is refused (no frames).
"""

from __future__ import annotations

import torch
from torch import Tensor

from ...errors import InputError
from .._attention import Recorder, _own_saved_tensors, _probs
from .opensora_layers import Attention, AttnProcessor


class RecordingProcessor(AttnProcessor):
    """The default processor plus probability recording into ``recorder``."""

    def __init__(self, recorder: Recorder, name: str, temporal: bool) -> None:
        self.recorder, self.name, self.temporal = recorder, name, temporal

    def inspect(self, attn: Attention, q: Tensor, k: Tensor) -> None:
        if self.recorder.active:
            with _own_saved_tensors():
                self._record(q, k)

    def _record(self, q: Tensor, k: Tensor) -> None:
        rec = self.recorder
        n = q.shape[2]
        layout = {
            "text": 0,
            "frames": n if self.temporal else 1,
            "per_frame": 1 if self.temporal else n,
        }
        if rec.mode == "exact":
            rows = torch.arange(n, device=q.device)
            probs = _probs(q, k, None)
        elif rec.mode == "sampled":
            rows = rec.rows(n, q.device)
            probs = _probs(q[:, :, rows], k, None)
        else:
            if not self.temporal:
                raise InputError(
                    f"capture(mode='pooled') needs frame tokens; {self.name} is spatial attention "
                    "(its tokens are positions within one frame): use mode='exact' or 'sampled'"
                )
            videos = rec.context.get("batch", 1)
            bs, h, f, d = q.shape
            qp = q.reshape(videos, bs // videos, h, f, d).mean(1)
            kp = k.reshape(videos, bs // videos, h, f, d).mean(1)
            rows = torch.arange(f, device=q.device)
            probs = _probs(qp, kp, None)
        rec.add_attention(self.name, probs, rows, layout)
