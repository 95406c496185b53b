"""Protection methods. Importing this package registers every built-in method in ``METHODS``."""

from __future__ import annotations

from . import (  # noqa: F401  (registers the methods)
    advdm,
    amortized,
    anti_i2v,
    i2vguard,
    mist,
    noise,
    photoguard,
    rollout_collapse,
    rollout_freeze,
    sds,
    vid_freeze,
)
from .base import Method, State

__all__ = [
    "Method",
    "State",
    "advdm",
    "amortized",
    "anti_i2v",
    "i2vguard",
    "mist",
    "noise",
    "photoguard",
    "rollout_collapse",
    "rollout_freeze",
    "sds",
    "vid_freeze",
]
