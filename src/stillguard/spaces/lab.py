"""The ``lab`` perturbation space (see :mod:`stillguard.spaces` for the choices)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from kornia.color import lab_to_rgb, rgb_to_lab
from torch import Tensor

from ..errors import InputError
from ..registry import SPACES
from .base import _LAB_INDEX, Space, box_ratio, rgb_box, uniform


@SPACES.register("lab")
@dataclass
class Lab(Space):
    """Perturb CIE L*a*b* channels (a*, b* by default, so lightness L* is untouched).

    Attributes:
        eps_ab: own L-infinity budget in Lab units; ``None`` means ``128 * eps`` (4.0 for 8/255).
        channels: which Lab channels to perturb, a subset of ``("L", "a", "b")``.

    Shape:
        x: ``(B, 3, H, W)`` in [0, 1]; param: ``(B, len(channels), H, W)``.
    """

    eps_ab: float | None = None
    channels: tuple[str, ...] = ("a", "b")

    def __post_init__(self) -> None:
        super().__post_init__()
        self.channels = tuple(self.channels)
        if not self.channels or any(c not in _LAB_INDEX for c in self.channels):
            raise InputError(f"lab channels {self.channels!r} must be a subset of ('L', 'a', 'b')")
        if self.eps_ab is None:
            self.eps_ab = 128.0 * self.eps
        if not self.eps_ab > 0:
            raise InputError(f"eps_ab={self.eps_ab!r} must be > 0 (Lab units; e.g. 4.0)")

    def _budget(self) -> float:
        return float(self.eps_ab)  # type: ignore[arg-type]

    def delta(self, x: Tensor, param: Tensor) -> Tensor:
        """RGB change caused by ``param`` before any clipping (exactly 0 for ``param == 0``).

        Shape:
            x: ``(B, 3, H, W)``; param: ``(B, len(channels), H, W)``; returns ``(B, 3, H, W)``.
        """
        lab = rgb_to_lab(x)
        zero = torch.zeros_like(lab[:, :1])
        parts = [zero, zero, zero]
        for i, name in enumerate(self.channels):
            parts[_LAB_INDEX[name]] = param[:, i : i + 1]
        shift = torch.cat(parts, dim=1)
        return lab_to_rgb(lab + shift, clip=False) - lab_to_rgb(lab, clip=False)

    def init(self, x: Tensor, generator: torch.Generator, random_start: bool) -> Tensor:
        shape = (x.shape[0], len(self.channels), *x.shape[-2:])
        if not random_start:
            return torch.zeros(shape, dtype=x.dtype, device=x.device)
        return self.project(x, uniform(shape, self._budget(), generator, x))

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        return rgb_box(x, x + self.delta(x, param), self.eps)

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor, frac: float, it: int) -> Tensor:
        return param - frac * self._budget() * torch.sign(grad)

    @torch.no_grad()
    def project(self, x: Tensor, param: Tensor, fit_iters: int = 3) -> Tensor:
        """Clamp to ``eps_ab``, then shrink each pixel's Lab shift until its RGB change fits the
        box and the [0, 1] gamut (a few fixed-point rounds, since lab -> rgb is nonlinear)."""
        param = param.clamp(-self._budget(), self._budget())
        for _ in range(fit_iters):
            ratio = box_ratio(x, self.delta(x, param), self.eps, gamut=True)
            param = param * ratio.amin(dim=1, keepdim=True)
        return param.detach()
