"""Layer names and capture of the ``skyreels-v2-i2v`` adapter (a mixin).

Layers: ``blocks.i`` (block outputs ``(B, S, D)``), ``blocks.i.attn1`` (video self-attention),
``vae.encoder.down_blocks.i`` (causal Wan VAE encoder, one record per chunk). ``attn1`` is Wan's
full 3D self-attention over the video tokens (``SkyReelsV2AttnProcessor`` is Wan's code; text and
CLIP tokens enter through ``attn2``); its recording processor is the shared
:class:`~.._shared.self_attention.RecordingWanAttnProcessor` (stock output, q and k recomputed for
the mode's rows), so maps are ``(B, heads, Q, F_lat·h/2·w/2)`` with ``layout.text = 0``. In the
diffusion-forcing flavour the prefix frame's tokens are keys and queries like the others (the
model attends to the photo's frame with full, non-causal attention: ``num_frame_per_block`` 1).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from .._shared.capture import (
    CaptureOptions,
    Capturing,
    capture_stock,
    frames_hook,
    joint_layer_names,
)
from .._shared.self_attention import RecordingWanAttnProcessor


class SkyReelsCapture(Capturing):
    """:meth:`layer_names` and :meth:`capture` of :class:`~.adapter.SkyReelsV2I2V`."""

    pipe: Any

    def layer_names(self, kind: str) -> list[str]:
        what = "full spatio-temporal video self-attention"
        return joint_layer_names(self, kind, "blocks", "attn1", what)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs and ``attn1`` maps (see the module docstring); ``pooled`` maps
        are ``(B, heads, F_lat, F_lat)``; VAE layers give one record per encoder chunk."""
        from diffusers.models.transformers.transformer_skyreels_v2 import SkyReelsV2AttnProcessor

        tr = self.pipe.transformer
        p_t = tr.config.patch_size[0]
        return capture_stock(
            self, tr, hidden, attention, options, stock=SkyReelsV2AttnProcessor,
            make=lambda rec, n, m: RecordingWanAttnProcessor(rec, n, m.processor),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=2, patch=p_t))],
        )  # fmt: skip
