"""The ``random`` transform.

* ``random`` applies one of its ``choices`` to each sample; ``real`` draws with ``REAL_SEED``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import TRANSFORMS
from .base import REAL_SEED, Transform


@TRANSFORMS.register("random")
@dataclass
class Random(Transform):
    """Per sample, one transform drawn uniformly from ``choices`` (spec strings)."""

    takes_choices: ClassVar[bool] = True
    choices: tuple[str, ...] = ("identity", "jpeg:75", "resize:0.5", "blur:1.0", "crop:4")
    _built: list[Transform] = dataclasses.field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.choices, str):
            self.choices = tuple(self.choices.split("+"))
        self.choices = tuple(self.choices)
        if not self.choices:
            raise InputError("random needs at least one choice, e.g. random:jpeg:75+blur:1.0")
        if any(c.strip().startswith("random") for c in self.choices):
            raise InputError("random cannot contain another random transform")
        from .parse import parse_transform

        self._built = [parse_transform(c) for c in self.choices]

    def _pick(self, x: Tensor, generator: torch.Generator, real: bool) -> Tensor:
        idx = torch.randint(
            len(self._built), (x.shape[0],), generator=generator, device=generator.device
        )
        outs = []
        for i, k in enumerate(idx.tolist()):
            t = self._built[k]
            outs.append(t.real(x[i : i + 1]) if real else t(x[i : i + 1], generator))
        return torch.cat(outs)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._pick(x, generator, real=False)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        return self._pick(x, torch.Generator().manual_seed(REAL_SEED), real=True)
