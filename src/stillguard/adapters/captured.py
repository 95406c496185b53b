"""What :meth:`~stillguard.adapters.base.Adapter.capture` records: block outputs and attention maps."""

from __future__ import annotations

from dataclasses import dataclass, field

from torch import Tensor


@dataclass
class Captured:
    """What :meth:`Adapter.capture` recorded. Lists hold one entry per denoiser call.

    Attributes:
        hidden: layer name -> list of block outputs (denoiser: ``(B, N_tokens, D)`` for CogVideoX,
            ``(B*F, C, h, w)`` for SVD blocks; VAE layers: their native output shape).
        attention: layer name -> list of attention probabilities ``(B', heads, Q, K)``; rows sum to 1.
            With ``mode="sampled"`` Q is a random subset of query rows (exact rows, against all keys);
            with ``mode="pooled"`` queries and keys are mean-pooled per latent frame (``Q = K = F_lat``).
        queries: layer name -> list (one per call, parallel to ``attention``) of the positions on
            the key axis of the recorded query rows, shape ``(Q,)``: ``arange(K)`` for ``exact``,
            the drawn rows for ``sampled``, ``arange(F_lat)`` for ``pooled``.
        layout: layer name -> how the key axis is laid out: ``{"text": T, "frames": F,
            "per_frame": n}`` means ``T`` text tokens first, then ``F`` frames of ``n`` tokens each
            (frame ``f`` of the video is keys ``T + f*n .. T + (f+1)*n - 1``). SVD spatial
            attention: ``frames=1``; SVD temporal attention: ``per_frame=1``.
    """

    hidden: dict[str, list[Tensor]] = field(default_factory=dict)
    attention: dict[str, list[Tensor]] = field(default_factory=dict)
    queries: dict[str, list[Tensor]] = field(default_factory=dict)
    layout: dict[str, dict[str, int]] = field(default_factory=dict)

    def clear(self) -> None:
        for d in (self.hidden, self.attention, self.queries):
            for v in d.values():
                v.clear()
