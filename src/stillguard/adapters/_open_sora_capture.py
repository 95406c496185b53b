"""Layer names and capture of the ``open-sora-1.2`` adapter (a mixin).

STDiT3 alternates 28 spatial and 28 temporal blocks: ``spatial_blocks.{i}.attn`` are
``attention-spatial`` (tokens of one latent frame), ``temporal_blocks.{i}.attn`` are
``attention-temporal`` (``T×T`` maps per position, Vid-Freeze's decoupled form); a hidden "block"
is a spatial+temporal pair recorded at ``temporal_blocks.{i}`` (Anti-I2V); ``vae`` names start
with ``vae.``. Names, shapes and layouts: :mod:`.nets.opensora_capture`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence

from ._shared.capture import CaptureOptions, Capturing
from .captured import Captured
from .nets.opensora_capture import capture_stdit3, layer_names


class OpenSoraCapture(Capturing):
    """``layer_names`` and ``capture`` of the Open-Sora 1.2 adapter."""

    def layer_names(self, kind: str) -> list[str]:
        """Names per kind (see the module docstring); VAE names start with ``vae.``."""
        return layer_names(self.pipe.transformer, self.pipe.vae, kind)

    def _capture(
        self, hidden: Sequence[str], attention: Sequence[str], options: CaptureOptions
    ) -> contextlib.AbstractContextManager[Captured]:
        """Record pair outputs ``(B, T·S, D)``, VAE layer outputs and self-attention maps
        (shapes and layouts: :mod:`.nets.opensora_capture`)."""
        return capture_stdit3(self, hidden, attention, options)
