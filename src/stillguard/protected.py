"""What the loop returns (:class:`Protected`, pure data), its progress events and the final rounding.

:mod:`stillguard.app.outputs` saves a :class:`Protected` as a PNG and a JSON sidecar; the loop
itself (:mod:`stillguard.loop`) never touches files.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .tensors import to_uint8

TOY_WARNING = (
    "protected against the tiny/toy model only: this does not protect against real image-to-video "
    "models; run protect() with a real adapter (e.g. load_adapter('cogvideox-i2v', model=...))"
)


@dataclass
class ProgressEvent:
    """Sent to ``protect(callback=...)`` after every step; ``step`` counts from 1 to ``steps``.

    For a batch (:func:`stillguard.loop.protect_batch`) ``loss`` is the mean over the batch,
    ``terms`` hold batch means too, and ``images`` are the batch's positions in the input list.
    """

    step: int
    steps: int
    loss: float
    terms: dict[str, float]
    elapsed: float
    images: tuple[int, ...] = (0,)


@dataclass
class Protected:
    """The result of :func:`protect`: pure data (save it with :func:`stillguard.save_protected`).

    Attributes:
        original: the input rounded to 8 bits, ``(1,3,H,W)`` in [0,1].
        image: the protected image, 8-bit valued, ``(1,3,H,W)`` in [0,1].
        delta: ``image - original``.
        losses: loss per step (mean over EOT draws); empty when no step was taken.
        terms: named loss terms per step.
        config: everything needed to reproduce the run (JSON-able); ``batch_size`` says how many
            images shared its forward passes.
        seconds: wall time of :func:`protect` (in a batch: the batch's time divided by its size).
    """

    original: Tensor
    image: Tensor
    delta: Tensor
    losses: list[float] = field(default_factory=list)
    terms: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def real_model(self) -> bool:
        """False when computed against the tiny/toy model (it protects nothing real)."""
        adapter = self.config.get("adapter") or {}
        if isinstance(adapter, list):  # an ensemble: real only if every member is
            return bool(adapter) and all(a.get("real_model", False) for a in adapter)
        return bool(adapter.get("real_model", False))

    def to_uint8(self) -> Any:
        """The protected image as 8-bit pixels. Shape: ``(H, W, 3)`` uint8 numpy array."""
        return to_uint8(self.image)


def quantise(x: Tensor, adv: Tensor, budget: int) -> tuple[Tensor, Tensor]:
    """Round to 8 bits, then clip into ``budget`` levels of the 8-bit original, so that
    ``|png - original|_inf <= budget/255`` holds on the saved file.

    Shape:
        ``x``, ``adv`` ``(B,3,H,W)`` in [0,1] -> ``(original, image)``, both ``(B,3,H,W)`` on the CPU.
    """
    x8 = torch.round(x * 255)
    a8 = torch.round(adv.detach().clamp(0, 1) * 255)
    a8 = torch.minimum(torch.maximum(a8, x8 - budget), x8 + budget).clamp(0, 255)
    return (x8 / 255).cpu(), (a8 / 255).cpu()
