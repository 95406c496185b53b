"""The ``identity`` transform: no purification (the baseline row of an evaluation)."""

from __future__ import annotations

from dataclasses import dataclass

from ..registry import TRANSFORMS
from .base import Transform


@TRANSFORMS.register("identity")
@dataclass
class Identity(Transform):
    """No purification (the baseline row of an evaluation)."""
