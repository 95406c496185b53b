"""Layer names and capture of the ``wan-i2v`` adapter (a mixin), and the recording processor of
Wan's video self-attention.

Layers: ``blocks.i`` (block outputs ``(B, S, D)``), ``blocks.i.attn1`` (video self-attention),
``vae.encoder.down_blocks.i`` (causal VAE encoder, one record per chunk). On Wan2.2-A14B each
name exists in both experts; a capture hooks both and records whichever runs.

Wan's ``attn1`` is full 3D self-attention over the video tokens only (RoPE on q and k, RMS norm
across heads); text and CLIP tokens enter through ``attn2`` (cross-attention), so the recorded
maps have no text keys: ``layout = {"text": 0, "frames": F_tok, "per_frame": h/2·w/2}``.

:class:`RecordingWanAttnProcessor` leaves the stock ``WanAttnProcessor`` in charge of the output
(it calls it unchanged, so outputs stay bit-identical whatever attention backend is set) and
recomputes q and k only for what the mode records:

* ``exact``: all query rows against all keys (``S×S``; only for small models);
* ``sampled``: ``max_queries`` random rows against all keys; ``to_q`` runs on those rows only,
  so the extra cost is one ``to_k`` projection plus ``Q×S`` logits per layer (Wan2.1 at 480p:
  S = 21·30·52 = 32,760 video tokens);
* ``pooled``: q and k mean-pooled per latent frame, ``F×F`` maps (an estimate, see
  :mod:`.._shared.capture`).

Wan2.2-A14B has two experts with the same block names; :class:`ExpertRecorder` records both under
the public name (internal keys carry an ``@2`` suffix), so a capture follows whichever expert the
timestep selects, one entry per denoiser call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import close_matches
from .._shared.capture import (
    CaptureOptions,
    Capturing,
    capture_stock,
    frames_hook,
    joint_layer_names,
)
from .._shared.processors import StockOutputProcessor, interleaved_rope
from .._shared.recorder import Recorder, attention_probs, pool_per_frame


def public(name: str) -> str:
    """``"blocks.3.attn1@2"`` (second expert's module) -> ``"blocks.3.attn1"``."""
    return name.split("@", 1)[0]


class ExpertRecorder(Recorder):
    """A :class:`Recorder` that files the second expert's records under the public layer name."""

    def add_hidden(self, name: str, value: Tensor) -> None:
        super().add_hidden(public(name), value)

    def add_attention(self, name: str, probs: Tensor, rows: Tensor, layout: dict[str, int]) -> None:
        super().add_attention(public(name), probs, rows, layout)


class RecordingWanAttnProcessor(StockOutputProcessor):
    """Stock ``WanAttnProcessor`` output plus probability recording (see the module docstring)."""

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
        n_tok = hs.shape[1]
        frames = rec.context.get("token_frames", 1)
        layout = {"text": 0, "frames": frames, "per_frame": n_tok // frames}
        rows = rec.rows(n_tok, hs.device) if rec.mode == "sampled" else None
        q, k = self._qk(attn, hs, rows)
        if rotary_emb is not None:
            cos, sin = rotary_emb
            qc, qs = (cos, sin) if rows is None else (cos[:, rows], sin[:, rows])
            q, k = interleaved_rope(q, qc, qs), interleaved_rope(k, cos, sin)
        q, k = q.transpose(1, 2), k.transpose(1, 2)  # (B, heads, S, d)
        if rec.mode == "pooled":
            q, k = pool_per_frame(q, frames), pool_per_frame(k, frames)
            layout = {"text": 0, "frames": frames, "per_frame": 1}
            rows = torch.arange(frames, device=hs.device)
        elif rows is None:
            rows = torch.arange(n_tok, device=hs.device)
        rec.add_attention(self.name, attention_probs(q, k, None), rows, layout)


class WanCapture(Capturing):
    """:meth:`layer_names` and :meth:`capture` of :class:`~.adapter.WanI2V`."""

    # ------------------------------------------------------------------ introspection
    def layer_names(self, kind: str) -> list[str]:
        blocks = [f"blocks.{i}" for i in range(len(self.experts[0].blocks))]
        what = "full spatio-temporal video self-attention"
        return joint_layer_names(self, kind, blocks, "attn1", what)

    def _modules(self, names: Sequence[str], kinds: Sequence[str]) -> dict[str, Any]:
        """Internal key -> module; the second expert's modules get an ``@2`` suffix."""
        valid = [n for k in kinds for n in self.layer_names(k)]
        out: dict[str, Any] = {}
        for name in names:
            if name not in valid:
                raise InputError(f"unknown layer {name!r}: {close_matches(name, valid)}")
            if name.startswith("vae."):
                out[name] = self.pipe.vae.get_submodule(name[4:])
                continue
            for i, tr in enumerate(self.experts):
                out[name if i == 0 else f"{name}@{i + 1}"] = tr.get_submodule(name)
        return out

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs and video self-attention maps of whichever expert runs.

        Maps are ``(B, heads, Q, S)`` over the ``S = F_lat·h/2·w/2`` video tokens (no text keys:
        ``layout.text = 0``); ``pooled`` maps are ``(B, heads, F_lat, F_lat)``. Block outputs are
        ``(B, S, D)``; VAE layers give one record per encoder chunk.
        """
        from diffusers.models.transformers.transformer_wan import WanAttnProcessor

        p_t = self.experts[0].config.patch_size[0]
        return capture_stock(
            self,
            self.experts[0],
            hidden,
            attention,
            options,
            stock=WanAttnProcessor,
            make=lambda rec, n, m: RecordingWanAttnProcessor(rec, public(n), m.processor),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=2, patch=p_t)) for tr in self.experts],
            find=self._modules,
            show=public,
            recorder_class=ExpertRecorder,
        )
