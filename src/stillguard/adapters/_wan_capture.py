"""Layer names and capture for the Wan adapter (split from :mod:`.wan_i2v`; see its docstring).

Layers: ``blocks.i`` (block outputs ``(B, S, D)``), ``blocks.i.attn1`` (video self-attention),
``vae.encoder.down_blocks.i`` (causal VAE encoder, one record per chunk). On Wan2.2-A14B each
name exists in both experts; a capture hooks both and records whichever runs.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch

from ..errors import CapabilityError, InputError
from ..registry import close_matches
from ._capture_setup import capture_stock, frames_hook
from ._wan_attention import ExpertRecorder, RecordingWanAttnProcessor, public
from ._wan_sampling import WanSampling


class WanCapture(WanSampling):
    """:meth:`layer_names` and :meth:`capture` of :class:`~.wan_i2v.WanI2V`."""

    # ------------------------------------------------------------------ introspection
    def layer_names(self, kind: str) -> list[str]:
        n_blocks = len(self.experts[0].blocks)
        if kind == "hidden":
            return [f"blocks.{i}" for i in range(n_blocks)]
        if kind in ("attention", "attention-joint"):
            return [f"blocks.{i}.attn1" for i in range(n_blocks)]
        if kind == "vae":
            n = len(self.pipe.vae.encoder.down_blocks)
            return [f"vae.encoder.down_blocks.{i}" for i in range(n)]
        if kind in ("attention-temporal", "attention-spatial"):
            raise CapabilityError(
                f"{self.registry_name} has full spatio-temporal video self-attention only "
                f"(no {kind}): use kind='attention'"
            )
        raise InputError(
            f"unknown layer kind {kind!r}: {close_matches(kind, ['hidden', 'attention', 'vae'])}"
        )

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

    def capture(
        self,
        hidden: Sequence[str] = (),
        attention: Sequence[str] = (),
        *,
        mode: str = "exact",
        max_queries: int = 256,
        generator: torch.Generator | None = None,
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
            (mode, max_queries, generator),
            stock=WanAttnProcessor,
            make=lambda rec, n, m: RecordingWanAttnProcessor(rec, public(n), m.processor),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=2, patch=p_t)) for tr in self.experts],
            find=self._modules,
            show=public,
            recorder_class=ExpertRecorder,
        )
