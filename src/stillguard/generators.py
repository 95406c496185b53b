"""One random stream per image, so a batch of images gives each image the bytes it would get alone.

:func:`stillguard.loop.protect_batch` optimises B images of one size in one forward/backward of the
target model. Every random draw of a run (start point, timesteps, noise, transform parameters) comes
from a CPU ``torch.Generator`` seeded with the run's seed; in a batch each image keeps its own such
generator, seeded with the same seed, and the draws of image ``b`` come from generator ``b`` in the
order a one-image run makes them. A batched run therefore draws exactly what B one-image runs draw;
what remains different is float rounding in batched kernels (about 1e-6 relative on the tiny
adapters), which a sign-gradient step can turn into a one-level difference on a few pixels.

:class:`Generators` is what a method receives as its ``generator`` for a batch (a one-image run
passes the plain ``torch.Generator``); :func:`per_image` draws a tensor per image and stacks it.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor


class Generators(list):
    """The per-image CPU generators of a batch, in batch order (a ``list`` of ``torch.Generator``)."""

    @classmethod
    def seeded(cls, seed: int, count: int) -> Generators:
        """``count`` generators, each seeded with ``seed`` (as ``count`` one-image runs would be)."""
        return cls(torch.Generator().manual_seed(seed) for _ in range(count))


def streams(generator: torch.Generator | Generators) -> list[torch.Generator]:
    """The generators behind ``generator``: itself for one image, one per image for a batch."""
    return list(generator) if isinstance(generator, Generators) else [generator]


def per_image(draw: Callable[[torch.Generator], Tensor], generator: Any) -> Tensor:
    """``draw(g)`` for each image's generator ``g``, concatenated on the batch axis.

    Shape:
        each ``draw(g)`` ``(1, ...)`` -> ``(B, ...)``; one image: ``draw(generator)`` itself.
    """
    gens = streams(generator)
    parts = [draw(g) for g in gens]
    return parts[0] if len(parts) == 1 else torch.cat(parts)
