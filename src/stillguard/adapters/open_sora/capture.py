"""Layer names and capture of the ``open-sora-1.2`` adapter (a mixin): STDiT3's spatial and
temporal self-attention, pair outputs and VAE layers.

STDiT3 alternates 28 spatial and 28 temporal blocks: ``spatial_blocks.{i}.attn`` are
``attention-spatial`` (tokens of one latent frame), ``temporal_blocks.{i}.attn`` are
``attention-temporal`` (``T×T`` maps per position, Vid-Freeze's decoupled form); a hidden "block"
is a spatial+temporal pair recorded at ``temporal_blocks.{i}`` (Anti-I2V); ``vae`` names start
with ``vae.``.

A :class:`RecordingProcessor` replaces a block's default processor during
:meth:`~.adapter.OpenSora12.capture`; it runs the very same code (it only
overrides :meth:`AttnProcessor.inspect`), so outputs stay bit-identical, and records
``softmax(q kᵀ / sqrt(d))`` of the final (QK-normed, RoPE-rotated) q and k, with autograd.

Shapes (B videos, T latent frames, S = h·w/4 tokens per frame):
    * temporal blocks attend over frames: batch axis ``B·S``, maps ``(B·S, heads, Q, T)``; layout
      ``{"text": 0, "frames": T, "per_frame": 1}``; ``pooled`` averages q and k over the S
      positions of each video first, giving ``(B, heads, T, T)``;
    * spatial blocks attend within a frame: batch axis ``B·T``, maps ``(B·T, heads, Q, S)``;
      layout ``{"text": 0, "frames": 1, "per_frame": S}``; ``pooled`` is refused (no frames).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ...errors import CapabilityError, InputError
from ...registry import close_matches
from .._shared.capture import CaptureOptions, Capturing, capture_stock, frames_hook
from .._shared.recorder import Recorder, record_factorised
from ..captured import Captured
from .nets.layers import Attention, AttnProcessor

KINDS = ["hidden", "attention", "attention-temporal", "attention-spatial", "vae"]


def layer_names(transformer: Any, vae: Any, kind: str) -> list[str]:
    """Capturable layers of an STDiT3 + video VAE, in network order.

    ``attention``: spatial and temporal self-attention alternating; ``hidden``: one name per
    spatial+temporal pair (the temporal block's output is the pair's output); ``vae``: the SDXL-VAE
    encoder's down blocks, then the last ResBlock of each temporal-VAE encoder level.
    """
    depth = transformer.config.depth
    temporal = [f"temporal_blocks.{i}.attn" for i in range(depth)]
    spatial = [f"spatial_blocks.{i}.attn" for i in range(depth)]
    if kind == "attention-temporal":
        return temporal
    if kind == "attention-spatial":
        return spatial
    if kind == "attention":
        return [n for pair in zip(spatial, temporal, strict=True) for n in pair]
    if kind == "hidden":
        return [f"temporal_blocks.{i}" for i in range(depth)]
    if kind == "vae":
        down = len(vae.spatial_vae.module.encoder.down_blocks)
        levels = vae.temporal_vae.encoder.block_res_blocks
        last = len(levels[0]) - 1
        return [f"vae.spatial_vae.module.encoder.down_blocks.{i}" for i in range(down)] + [
            f"vae.temporal_vae.encoder.block_res_blocks.{i}.{last}" for i in range(len(levels))
        ]
    if kind == "attention-joint":
        raise CapabilityError(
            "open-sora-1.2 has separate spatial and temporal attention, no joint maps: "
            "use kind='attention-temporal' or 'attention-spatial'"
        )
    raise InputError(f"unknown layer kind {kind!r}: {close_matches(kind, KINDS)}")


def capture_stdit3(
    adapter: Any,
    hidden: Sequence[str],
    attention: Sequence[str],
    options: tuple[str, int, torch.Generator | None],
) -> contextlib.AbstractContextManager[Captured]:
    """Swap in :class:`RecordingProcessor` s and hooks on ``adapter.pipe.transformer`` (an STDiT3;
    restored on exit); a pre-hook on its call notes the batch size and latent frame count for
    ``pooled`` maps. ``options``: ``(mode, max_queries, generator)``."""
    model = adapter.pipe.transformer
    return capture_stock(
        adapter,
        model,
        hidden,
        attention,
        options,
        stock=None,
        make=lambda rec, n, _m: RecordingProcessor(rec, n, temporal=n.startswith("temporal_")),
        hooks=lambda rec: [(model, frames_hook(rec, axis=2, arg="x"))],
    )


class RecordingProcessor(AttnProcessor):
    """The default processor plus probability recording into ``recorder``."""

    def __init__(self, recorder: Recorder, name: str, temporal: bool) -> None:
        self.recorder, self.name, self.temporal = recorder, name, temporal

    def inspect(self, attn: Attention, q: Tensor, k: Tensor) -> None:
        record_factorised(
            self.recorder, self.name, q, k, None,
            temporal=self.temporal, tokens="positions within one frame",
        )  # fmt: skip


class OpenSoraCapture(Capturing):
    """``layer_names`` and ``capture`` of the Open-Sora 1.2 adapter."""

    def layer_names(self, kind: str) -> list[str]:
        """Names per kind (see the module docstring); VAE names start with ``vae.``."""
        return layer_names(self.pipe.transformer, self.pipe.vae, kind)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> contextlib.AbstractContextManager[Captured]:
        """Record pair outputs ``(B, T·S, D)``, VAE layer outputs and self-attention maps
        (shapes and layouts: the module docstring)."""
        return capture_stdit3(self, hidden, attention, options)
