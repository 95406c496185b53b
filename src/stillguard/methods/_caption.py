"""The caption of a photo and how a method conditions the target on it.

Anti-I2V (arXiv 2603.24570, "Overall Architecture") has "an LVLM generate a caption" so that the
video model is conditioned as it would be at inference. Two sources here, both optional:
    * a caption text (method option ``caption``; CLI ``--caption TEXT``);
    * a captioner: an image-to-text vision-language model from a LOCAL folder (safetensors only,
      never downloaded; method option ``captioner`` or the ``STILLGUARD_CAPTIONER`` environment
      variable), any model ``transformers.AutoModelForImageTextToText`` loads with its
      ``AutoProcessor`` (BLIP-style captioners), run greedily on the clean photo.

The text is embedded by the TARGET's own text encoder (:meth:`embed_text` of adapters that keep
one; CogVideoX reloads its T5 from the model folder for it), and :func:`prompted` swaps those
embeddings in for the method's forwards and the reference video. Targets whose text conditioning
is fixed at load time (the toy models: a null prompt) refuse a caption with one line.
"""

from __future__ import annotations

import contextlib
import logging
import os
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor

from ..errors import CapabilityError, ModelError

log = logging.getLogger(__name__)
CAPTIONER_ENV = "STILLGUARD_CAPTIONER"
#: longest caption the captioner writes (new tokens)
MAX_NEW_TOKENS = 40
_CAPTIONERS: dict[str, Captioner] = {}


class Captioner:
    """An image-to-text model from a local folder; ``caption(x)`` -> str (greedy decoding)."""

    def __init__(self, folder: str, device: torch.device | str = "cpu") -> None:
        try:
            from transformers import AutoModelForImageTextToText, AutoProcessor
        except ImportError as e:  # pragma: no cover - transformers is a dependency
            raise ModelError(f"the captioner needs transformers: {e}") from None
        try:
            self.processor = AutoProcessor.from_pretrained(folder, local_files_only=True)
            model = AutoModelForImageTextToText.from_pretrained(
                folder, local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError, KeyError) as e:
            raise ModelError(
                f"cannot load a captioner from {folder!r}: {e}; point captioner (or "
                f"{CAPTIONER_ENV}) at an image-to-text model saved with save_pretrained "
                "(safetensors) together with its processor"
            ) from None
        self.model = model.to(device).eval().requires_grad_(False)
        self.device = torch.device(device)

    @torch.no_grad()
    def caption(self, x: Tensor) -> str:
        """The caption of ``x`` ``(1,3,H,W)`` in [0,1]."""
        pixels = (x[0].detach().float().cpu().clamp(0, 1) * 255).round().to(torch.uint8)
        inputs = self.processor(images=pixels.permute(1, 2, 0).numpy(), return_tensors="pt")
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        ids = self.model.generate(**inputs, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
        text = self.processor.batch_decode(ids, skip_special_tokens=True)[0]
        return " ".join(text.split())


def captioner_folder(option: str | None) -> str | None:
    """The captioner folder: the option, else ``$STILLGUARD_CAPTIONER``, else ``None``."""
    return option or os.environ.get(CAPTIONER_ENV) or None


def caption_of(x_clean: Tensor, caption: str, captioner: str | None, device: Any) -> str:
    """The caption to use: ``caption`` when given, else the captioner's (cached model), else ""."""
    if caption:
        return caption
    folder = captioner_folder(captioner)
    if not folder:
        return ""
    if folder not in _CAPTIONERS:
        _CAPTIONERS[folder] = Captioner(folder, device)
    text = _CAPTIONERS[folder].caption(x_clean)
    log.info("caption from %s: %r", os.path.basename(os.path.normpath(folder)), text)
    return text


def text_conditioning(adapter: Any, text: str) -> dict[str, Tensor] | None:
    """The adapter attributes that condition it on ``text`` (``None`` for no text).

    Raises:
        CapabilityError: the target cannot embed a caption (its text conditioning is fixed).
    """
    if not text:
        return None
    embed = getattr(adapter, "embed_text", None)
    if embed is None:
        raise CapabilityError(
            f"target {adapter.registry_name!r} cannot embed a caption (its text conditioning is "
            "fixed when it loads); drop the caption, or load a target that keeps a text encoder"
        )
    return embed(text)


@contextlib.contextmanager
def prompted(adapter: Any, conditioning: dict[str, Tensor] | None) -> Iterator[None]:
    """Inside this block the adapter is conditioned on ``conditioning`` (from
    :func:`text_conditioning`); its own attributes come back on exit. ``None``: unchanged."""
    if not conditioning:
        yield
        return
    saved = {k: getattr(adapter, k) for k in conditioning}
    try:
        for k, v in conditioning.items():
            setattr(adapter, k, v)
        yield
    finally:
        for k, v in saved.items():
            setattr(adapter, k, v)
