"""Layer names and attention capture of the ``cogvideox-i2v`` adapter (a mixin).

Vid-Freeze's "attention that synthesizes motion" in CogVideoX is the joint text+video 3D
self-attention ``transformer_blocks.{i}.attn1``: one softmax over ``T`` text tokens followed by
``F_tok`` token frames of ``(h/p)·(w/p)`` tokens each, where ``F_tok = F_lat / patch_size_t``
(CogVideoX1.5 packs 2 latent frames into one token frame; 5b-I2V has no temporal patching).
Hidden states are the block outputs; VAE features are the encoder's down blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ._capture_processors import RecordingCogVideoXAttnProcessor
from ._capture_setup import CaptureOptions, Capturing, capture_stock, frames_hook, joint_layer_names


class CogVideoXCapture(Capturing):
    """``layer_names`` and ``capture`` of the CogVideoX-I2V adapter."""

    def layer_names(self, kind: str) -> list[str]:
        n_blocks = len(self.pipe.transformer.transformer_blocks)
        blocks = [f"transformer_blocks.{i}" for i in range(n_blocks)]
        return joint_layer_names(self, kind, blocks, "attn1", "joint spatio-temporal attention")

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs and joint attention maps; see :mod:`._attention` for the modes.

        Layout of a map's key axis: ``T`` text tokens, then ``F_tok`` token frames of
        ``h/p·w/p`` tokens (``Captured.layout``); ``exact`` and ``sampled`` maps are
        ``(B, heads, Q, T + F_tok·n)``; ``pooled`` maps ``(B, heads, F_tok, F_tok)``.
        """
        from diffusers.models.attention_processor import CogVideoXAttnProcessor2_0

        tr = self.pipe.transformer
        p_t = tr.config.patch_size_t or 1
        return capture_stock(
            self,
            tr,
            hidden,
            attention,
            options,
            stock=CogVideoXAttnProcessor2_0,
            hint=" (unfuse QKV projections first)",
            make=lambda rec, n, _m: RecordingCogVideoXAttnProcessor(rec, n),
            hooks=lambda rec: [(tr, frames_hook(rec, axis=1, patch=p_t))],
        )
