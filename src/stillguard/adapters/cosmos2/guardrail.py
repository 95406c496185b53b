"""Cosmos' guardrail: what ``generate`` runs, and the stand-in that lets stillguard load the model.

``Cosmos2VideoToWorldPipeline`` refuses to run without a safety checker (NVIDIA Open Model License:
"You have disabled the safety checker"); the real one is the separate ``cosmos_guardrail``
package (it screens the prompt and the generated frames and blurs faces, with models of its own:
a large download stillguard never makes). The guardrail sees the prompt and the *output* video,
never the conditioning: it plays no part in the attack path, only in what ``generate`` returns.

The choice (setting ``guardrail``):

* ``"cosmos"`` (the default, for real models): ``generate`` runs ``cosmos_guardrail``'s
  ``CosmosSafetyChecker``; if the package is not installed, ``generate`` stops with one line saying
  how to install it or how to switch it off knowingly. Loading and protecting never need it.
* ``"off"``: ``generate`` runs a pass-through stand-in, says so in a warning at every call, and the
  adapter's ``describe()`` (hence every sidecar and report) records ``"guardrail": "off"``; the
  videos are then the model's raw output, unscreened and without the face blur the pipeline's
  users get. Meant for measuring the model itself (motion of clean vs protected videos), and the
  tiny test model's setting. stillguard never turns the guardrail off on its own.

The stand-in (:func:`stand_in`) is also what the pipeline is loaded with (the real checker is
built only when ``generate`` first needs it), since diffusers would otherwise try to import
``cosmos_guardrail`` while loading. It is a ``ModelMixin`` holding one buffer: the pipeline asks
every component for its device.
"""

from __future__ import annotations

import functools
import logging
from typing import Any

import torch

from ...errors import ModelError

logger = logging.getLogger(__name__)

GUARDRAILS = ("cosmos", "off")


@functools.cache
def _stand_in_class() -> type:
    from diffusers.configuration_utils import ConfigMixin
    from diffusers.models.modeling_utils import ModelMixin

    class NoGuardrail(ModelMixin, ConfigMixin):
        """A pass-through safety checker: every prompt is "safe", every video unchanged."""

        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("_device", torch.zeros(1), persistent=False)

        def check_text_safety(self, prompt: str) -> bool:
            return True

        def check_video_safety(self, frames: Any) -> Any:
            return frames

    return NoGuardrail


def stand_in() -> Any:
    """A fresh pass-through safety checker (see the module docstring)."""
    return _stand_in_class()()


def is_stand_in(checker: Any) -> bool:
    return isinstance(checker, _stand_in_class())


def real_checker() -> Any:
    """``cosmos_guardrail``'s checker, or one :class:`ModelError` saying what to do."""
    try:
        from cosmos_guardrail import CosmosSafetyChecker
    except ImportError:
        raise ModelError(
            "cosmos2-i2v generation runs NVIDIA's Cosmos guardrail, as the pipeline requires, but "
            "the package cosmos_guardrail is not installed: pip install cosmos_guardrail (it brings "
            "its own models), or set the target option guardrail=off (--set "
            "target.options.guardrail=off) to measure the model's raw, unscreened output"
        ) from None
    return CosmosSafetyChecker()


def guardrail_for(pipe: Any, setting: str) -> None:
    """Put the checker ``setting`` asks for on ``pipe`` before the pipeline's ``__call__``."""
    if setting == "off":
        if not is_stand_in(pipe.safety_checker):
            pipe.register_modules(safety_checker=stand_in())
        logger.warning(
            "cosmos2-i2v: the Cosmos guardrail is OFF (guardrail=off): these videos are the "
            "model's raw output, not screened or face-blurred as the pipeline does for its users"
        )
    elif is_stand_in(pipe.safety_checker):
        pipe.register_modules(safety_checker=real_checker())
