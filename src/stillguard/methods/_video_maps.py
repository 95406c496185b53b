"""The text-token convention of the attention losses: video query rows against video keys.

Joint-attention models (CogVideoX, HunyuanVideo, LTX) attend over text and video tokens together;
the capture records text first on both axes (``Captured.layout``), and its three modes differ in
what they keep: ``exact`` every row and key, ``sampled`` video rows against every key, ``pooled``
video only. Vid-Freeze's sources say nothing about text tokens (the third-party port it is read
from has none), so one convention for every mode, the one closest to "temporal" freezing: keep the
video query rows and the video keys, and renormalise each row over the video keys (the same as a
softmax over the video keys only, since ``softmax`` restricted to a subset and renormalised is the
softmax of that subset). Maps without text tokens pass unchanged.
"""

from __future__ import annotations

from collections.abc import Sequence

from torch import Tensor

from ..adapters.captured import Captured
from ..errors import CapabilityError


def video_block(probs: Tensor, text: int) -> Tensor:
    """The video rows and video keys of one recorded map, each row renormalised to sum to 1.

    A square map holds every row (``exact``: rows ``0..T+N-1``, the text rows first); the capture
    draws ``sampled`` rows among the video rows only, so a non-square map has no text row (no
    data-dependent indexing, so planning on fake tensors works).

    Shape:
        ``probs`` ``(B', heads, Q, T + N)`` -> ``(B', heads, Q_video, N)``.
    """
    if text <= 0:
        return probs
    block = probs[..., text:, :] if probs.shape[-2] == probs.shape[-1] else probs
    block = block[..., text:]
    return block / block.sum(-1, keepdim=True).clamp_min(1e-12)


def video_maps(cap: Captured, names: Sequence[str]) -> list[Tensor]:
    """Every recorded map of ``names`` (layer then call order, as :func:`.base.flat`) reduced to
    its video block (:func:`video_block`)."""
    out: list[Tensor] = []
    for n in names:
        text = int(cap.layout.get(n, {}).get("text", 0))
        out.extend(video_block(probs, text) for probs in cap.attention.get(n, []))
    if not out:
        raise CapabilityError(f"capture recorded nothing for layers {list(names)}")
    return out
