"""The transform base class and the helpers shared by the transform plug-ins.

Each transform is a dataclass with two faces:

* ``__call__(x, generator)``: differentiable, random parameters drawn from ``generator``; the
  protection loop averages its loss over these draws (Expectation over Transformation, Athalye et
  al., arXiv 1707.07397) so the perturbation survives the purification.
* ``real(x)``: the exact, deterministic purification an attacker would run on the saved image
  (Pillow JPEG, Pillow resampling, ...). Its output is rounded to 8 bits, as the purified file
  would be.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import Tensor

from ..errors import InputError
from ..tensors import pad, quantize8

#: seed of the random draws of ``real()`` (noisy-upscale, random), so purification is reproducible
REAL_SEED = 0
#: the purifications an evaluation runs by default
DEFAULT_PURIFICATIONS: tuple[str, ...] = (
    "jpeg:95",
    "jpeg:75",
    "jpeg:50",
    "resize:0.5",
    "resize:0.75",
    "blur:1.0",
    "noisy-upscale",
)


def to_pil(img: Tensor) -> Image.Image:
    arr = torch.round(img.detach().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu()
    return Image.fromarray(arr.numpy(), mode="RGB")


def from_pil(img: Image.Image, like: Tensor) -> Tensor:
    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())
    return (arr.permute(2, 0, 1).to(dtype=torch.float64) / 255.0).to(like)


def per_image_pil(x: Tensor, fn: Any) -> Tensor:
    """Apply a PIL -> PIL function to each image of a batch. Shape: ``(B, 3, H, W)``."""
    return torch.stack([from_pil(fn(to_pil(img)), x) for img in x])


def down_up(x: Tensor, scale: float) -> Tensor:
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    down = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    return F.interpolate(down, size=(h, w), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def shift(x: Tensor, dy: int, dx: int, m: int) -> Tensor:
    h, w = x.shape[-2:]
    padded = pad(x, (m, m, m, m))
    return padded[..., m + dy : m + dy + h, m + dx : m + dx + w]


def as_float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number, got {value!r}")
    return float(value)


@dataclass
class Transform:
    """Base class: a differentiable ``__call__`` for EOT and an exact ``real`` for evaluation."""

    registry_name: ClassVar[str] = "transform"

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        """Differentiable transform with random parameters from ``generator``.

        Shape:
            x: ``(B, 3, H, W)`` in [0, 1]; returns the same shape, in [0, 1].
        """
        return x

    def real(self, x: Tensor) -> Tensor:
        """Exact deterministic purification, rounded to 8 bits.

        Shape:
            x: ``(B, 3, H, W)`` in [0, 1]; returns the same shape, in [0, 1].
        """
        return quantize8(x)

    @property
    def label(self) -> str:
        """Spec string that :func:`parse_transform` turns back into an equal transform."""
        fields = [f for f in dataclasses.fields(self) if f.init]
        if not fields:
            return self.registry_name
        first = f"{self.registry_name}:{_fmt(getattr(self, fields[0].name))}"
        rest = [
            f"{f.name}={_fmt(getattr(self, f.name))}"
            for f in fields[1:]
            if getattr(self, f.name) != f.default
        ]
        return ",".join([first, *rest])

    def describe(self) -> dict[str, Any]:
        """JSON-able configuration: registry name, label and every field."""
        out: dict[str, Any] = {"name": self.registry_name, "label": self.label}
        for f in dataclasses.fields(self):
            if f.init:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "+".join(value)
    return repr(value) if isinstance(value, float) else str(value)


def _fmt(value: Any) -> str:
    if isinstance(value, tuple):
        return "+".join(value)
    return repr(value) if isinstance(value, float) else str(value)
