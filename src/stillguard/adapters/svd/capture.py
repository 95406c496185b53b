"""Layer names and attention capture of the ``svd`` adapter (a mixin).

SVD's UNet factorises attention: spatial self-attention ``...transformer_blocks.{j}.attn1`` (tokens
are the pixels of one frame, batch ``B·F``) and temporal self-attention
``...temporal_transformer_blocks.{j}.attn1`` (tokens are the frames of one pixel, batch ``B·h·w``).
Vid-Freeze's motion attention is the temporal one. Hidden states are the UNet's down, mid and up
blocks; VAE features are the encoder's down blocks.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from ...errors import CapabilityError, InputError
from ...registry import close_matches
from .._shared.capture import CaptureOptions, Capturing, capture_stock, frames_hook
from .._shared.processors import RecordingAttnProcessor


class SVDCapture(Capturing):
    """``layer_names`` and ``capture`` of the SVD adapter."""

    def layer_names(self, kind: str) -> list[str]:
        procs = [n.removesuffix(".processor") for n in self.pipe.unet.attn_processors]
        temporal = [
            n for n in procs if n.endswith("attn1") and ".temporal_transformer_blocks." in n
        ]
        spatial = [n for n in procs if n.endswith("attn1") and ".transformer_blocks." in n]
        if kind == "attention-temporal":
            return temporal
        if kind == "attention-spatial":
            return spatial
        if kind == "attention":
            return [n for n in procs if n in temporal or n in spatial]
        unet = self.pipe.unet
        if kind == "hidden":
            return (
                [f"down_blocks.{i}" for i in range(len(unet.down_blocks))]
                + ["mid_block"]
                + [f"up_blocks.{i}" for i in range(len(unet.up_blocks))]
            )
        if kind == "vae":
            return [
                f"vae.encoder.down_blocks.{i}"
                for i in range(len(self.pipe.vae.encoder.down_blocks))
            ]
        if kind == "attention-joint":
            raise CapabilityError(
                "svd has separate spatial and temporal attention, no joint maps: "
                "use kind='attention-temporal' or 'attention-spatial'"
            )
        kinds = ["hidden", "attention", "attention-temporal", "attention-spatial", "vae"]
        raise InputError(f"unknown layer kind {kind!r}: {close_matches(kind, kinds)}")

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> Any:
        """Record block outputs and self-attention maps (``exact``/``sampled``; ``pooled`` on
        temporal layers only). Temporal maps are ``(B·h·w, heads, F, F)``; spatial maps
        ``(B·F, heads, Q, h·w)``; ``pooled`` temporal maps ``(B, heads, F, F)``."""
        from diffusers.models.attention_processor import AttnProcessor2_0

        temporal = set(self.layer_names("attention-temporal"))
        unet = self.pipe.unet
        return capture_stock(
            self,
            unet,
            hidden,
            attention,
            options,
            stock=AttnProcessor2_0,
            hint=" (call unet.set_default_attn_processor())",
            make=lambda rec, n, _m: RecordingAttnProcessor(rec, n, temporal=n in temporal),
            hooks=lambda rec: [(unet, frames_hook(rec, axis=1, arg="sample"))],
        )
