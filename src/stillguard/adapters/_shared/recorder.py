"""The recorder behind attention capture: modes, sampled rows, and where records go.

See :mod:`.capture` for the idea (recording copies of the stock attention processors) and the
three modes. This module holds what every recording processor shares: the :class:`Recorder`, the
probability computation (SDPA's default scale ``1/sqrt(head_dim)``) and the saved-tensor hooks that
keep the recording out of a surrounding gradient checkpoint.
"""

from __future__ import annotations

import contextlib
import contextvars
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ..captured import Captured

MODES = ("exact", "sampled", "pooled")
_STOP_AFTER: contextvars.ContextVar[frozenset[str] | None] = contextvars.ContextVar(
    "stillguard_stop_after", default=None
)


class StopForward(Exception):  # noqa: N818 - a control-flow signal, not an error
    """Raised by the recorder inside :func:`truncated_after` once every named layer is recorded."""


@contextlib.contextmanager
def truncated_after(names: Iterable[str] | None) -> Iterator[None]:
    """A truncated forward: inside this block, a denoiser call stops (:class:`StopForward`) as
    soon as the attention of every layer in ``names`` has been recorded, so no later block is
    computed, and the backward pass never goes through them. ``None`` or empty: no truncation.

    The caller catches :class:`StopForward` around the denoiser call and uses what was captured;
    only the capture's records may be used (the denoiser's output does not exist). Adapters whose
    processors do not record through :class:`Recorder` simply run the whole forward.
    """
    token = _STOP_AFTER.set(frozenset(names) if names else None)
    try:
        yield
    finally:
        _STOP_AFTER.reset(token)


def in_backward() -> bool:
    """True while autograd runs a backward pass (e.g. a checkpoint recomputation)."""
    try:
        return torch._C._current_graph_task_id() != -1
    except AttributeError:  # pragma: no cover - very old torch
        return False


class Recorder:
    """Collects what the recording processors and hooks see into a :class:`Captured`."""

    def __init__(
        self,
        captured: Captured,
        mode: str,
        max_queries: int,
        generator: torch.Generator | None,
    ) -> None:
        if mode not in MODES:
            raise InputError(f"unknown capture mode {mode!r}: choose one of {', '.join(MODES)}")
        if mode == "sampled" and generator is None:
            raise InputError(
                "capture(mode='sampled') draws random query rows: pass generator=torch.Generator()"
                ".manual_seed(seed) so that runs are reproducible"
            )
        if max_queries < 1:
            raise InputError(f"max_queries must be >= 1, got {max_queries}")
        self.captured = captured
        self.mode = mode
        self.max_queries = max_queries
        self.generator = generator
        #: facts about the current denoiser call set by a pre-hook (e.g. latent frames, batch)
        self.context: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return not in_backward()

    def rows(self, n: int, device: torch.device) -> Tensor:
        """Sorted random subset of ``range(n)`` of size ``min(n, max_queries)``."""
        if n <= self.max_queries:
            return torch.arange(n, device=device)
        perm = torch.randperm(n, generator=self.generator, device=self.generator.device)
        return perm[: self.max_queries].sort().values.to(device)

    def add_attention(self, name: str, probs: Tensor, rows: Tensor, layout: dict[str, int]) -> None:
        self.captured.attention.setdefault(name, []).append(probs)
        self.captured.queries.setdefault(name, []).append(rows)
        self.captured.layout[name] = layout
        stop = _STOP_AFTER.get()
        if stop is not None and stop <= self.captured.attention.keys():
            raise StopForward(name)

    def add_hidden(self, name: str, value: Tensor) -> None:
        if not self.active:
            return
        self.captured.hidden.setdefault(name, []).append(value)


def own_saved_tensors() -> Any:
    """Saved-tensor hooks that keep the probability ops out of a surrounding checkpoint."""
    return torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t)


def attention_probs(q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
    """``softmax(q kᵀ / sqrt(d) + mask)`` in float32, cast back. Shape ``(..., Q, K)``."""
    logits = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        logits = logits + mask
    return logits.float().softmax(-1).to(q.dtype)


def pool_per_frame(x: Tensor, frames: int, text: int = 0) -> Tensor:
    """The video tokens of ``x`` ``(B, heads, T + F·n, d)`` mean-pooled per frame: ``(B, heads, F, d)``."""
    b, h, _, d = x.shape
    return x[:, :, text:].reshape(b, h, frames, -1, d).mean(3)


def record_joint(
    rec: Recorder, name: str, query: Tensor, key: Tensor, mask: Tensor | None, text: int
) -> None:
    """Record one map of joint (text + video) attention, text first on both axes.

    ``query``/``key``: ``(B, heads, T + F·n, d)``; ``mask``: additive, broadcastable to
    ``(B, heads, Q, K)``, or ``None``. The frame count ``F`` comes from
    ``rec.context["token_frames"]`` (set by the adapter's pre-hook). ``exact``: every row;
    ``sampled``: random *video* rows against all keys; ``pooled``: video q and k mean-pooled per
    frame (text left out).
    """
    if not rec.active:
        return
    with own_saved_tensors():
        n_video = query.shape[2] - text
        frames = rec.context.get("token_frames", 1)
        layout = {"text": text, "frames": frames, "per_frame": n_video // frames}
        if rec.mode == "exact":
            rows = torch.arange(query.shape[2], device=query.device)
            probs = attention_probs(query, key, mask)
        elif rec.mode == "sampled":
            rows = text + rec.rows(n_video, query.device)
            row_mask = mask if mask is None or mask.shape[-2] == 1 else mask[..., rows, :]
            probs = attention_probs(query[:, :, rows], key, row_mask)
        else:
            qp, kp = pool_per_frame(query, frames, text), pool_per_frame(key, frames, text)
            rows = torch.arange(frames, device=query.device)
            probs = attention_probs(qp, kp, None)
            layout = {"text": 0, "frames": frames, "per_frame": 1}
        rec.add_attention(name, probs, rows, layout)


def record_factorised(
    rec: Recorder,
    name: str,
    query: Tensor,
    key: Tensor,
    mask: Tensor | None,
    *,
    temporal: bool,
    tokens: str,
) -> None:
    """Record one map of factorised attention (SVD's UNet, STDiT3): spatial or temporal.

    ``query``/``key``: ``(B', heads, N, d)`` with ``B' = B·F`` (spatial: the tokens are the
    ``tokens`` of one frame) or ``B' = B·h·w`` (temporal: the tokens are frames). ``pooled``
    averages temporal q and k over the positions of each video (``rec.context["batch"]`` videos)
    and is refused on spatial attention.
    """
    if not rec.active:
        return
    with own_saved_tensors():
        n = query.shape[2]
        layout = {"text": 0, "frames": n if temporal else 1, "per_frame": 1 if temporal else n}
        if rec.mode == "exact":
            rows = torch.arange(n, device=query.device)
            probs = attention_probs(query, key, mask)
        elif rec.mode == "sampled":
            rows = rec.rows(n, query.device)
            row_mask = None if mask is None else mask[:, :, rows]
            probs = attention_probs(query[:, :, rows], key, row_mask)
        else:
            if not temporal:
                raise InputError(
                    f"capture(mode='pooled') needs frame tokens; {name} is spatial attention "
                    f"(its tokens are {tokens}): use mode='exact' or 'sampled' there"
                )
            videos = rec.context.get("batch", 1)
            bhw, h, f, d = query.shape
            qp = query.reshape(videos, bhw // videos, h, f, d).mean(1)
            kp = key.reshape(videos, bhw // videos, h, f, d).mean(1)
            rows = torch.arange(f, device=query.device)
            probs = attention_probs(qp, kp, None)
        rec.add_attention(name, probs, rows, layout)
