"""Protection methods. Importing this package registers every built-in method in ``METHODS``."""

from __future__ import annotations

from . import advdm, anti_i2v, i2vguard, mist, noise, photoguard, rollout_freeze, sds, vid_freeze
from .base import Method

__all__ = [
    "Method",
    "advdm",
    "anti_i2v",
    "i2vguard",
    "mist",
    "noise",
    "photoguard",
    "rollout_freeze",
    "sds",
    "vid_freeze",
]
