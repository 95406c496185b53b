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


def video_maps(cap: Captured, names: Sequence[str]) -> tuple[list[Tensor], list[int]]:
    """Every recorded map of ``names`` (layer then call order, as :func:`.base.flat`) and its text
    token count, for :func:`stillguard.losses.attention_frobenius`'s ``text`` (which takes the
    video block of each map without copying it). A square map holds every row (``exact``); the
    capture draws ``sampled`` rows among the video rows only, so a non-square map has no text
    row (no data-dependent indexing: planning on fake tensors works)."""
    maps: list[Tensor] = []
    text: list[int] = []
    for n in names:
        t = int(cap.layout.get(n, {}).get("text", 0))
        for probs in cap.attention.get(n, []):
            maps.append(probs)
            text.append(t)
    if not maps:
        raise CapabilityError(f"capture recorded nothing for layers {list(names)}")
    return maps, text
