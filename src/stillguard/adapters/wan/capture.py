"""Layer names and capture of the ``wan-i2v`` adapter (a mixin), and the recorder that follows
Wan2.2-A14B's two experts.

Layers: ``blocks.i`` (block outputs ``(B, S, D)``), ``blocks.i.attn1`` (video self-attention),
``vae.encoder.down_blocks.i`` (causal VAE encoder, one record per chunk). On Wan2.2-A14B each
name exists in both experts; a capture hooks both and records whichever runs.

Wan's ``attn1`` is full 3D self-attention over the video tokens only; its recording processor
(:class:`~.._shared.self_attention.RecordingWanAttnProcessor`, shared with SkyReels-V2, whose
attention is the same code) keeps the stock output and recomputes q and k for the mode's rows.

Wan2.2-A14B has two experts with the same block names; :class:`ExpertRecorder` records both under
the public name (internal keys carry an ``@2`` suffix), so a capture follows whichever expert the
timestep selects, one entry per denoiser call.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

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
from .._shared.recorder import Recorder
from .._shared.self_attention import RecordingWanAttnProcessor

__all__ = ["ExpertRecorder", "RecordingWanAttnProcessor", "WanCapture", "public"]


def public(name: str) -> str:
    """``"blocks.3.attn1@2"`` (second expert's module) -> ``"blocks.3.attn1"``."""
    return name.split("@", 1)[0]


class ExpertRecorder(Recorder):
    """A :class:`Recorder` that files the second expert's records under the public layer name."""

    def add_hidden(self, name: str, value: Tensor) -> None:
        super().add_hidden(public(name), value)

    def add_attention(self, name: str, probs: Tensor, rows: Tensor, layout: dict[str, int]) -> None:
        super().add_attention(public(name), probs, rows, layout)


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
