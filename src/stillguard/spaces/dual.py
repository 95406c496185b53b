"""The ``dual`` perturbation space (see :mod:`stillguard.spaces` for the choices)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import SPACES
from ._mask import budget_weight, check_mask, mask_of
from .base import Space, rgb_box
from .dct import Dct
from .lab import Lab


@SPACES.register("dual")
@dataclass
class Dual(Space):
    """Anti-I2V's Dual-Space Perturbation (arXiv 2603.24570): a Lab a*b* part plus a
    low-frequency DCT part, updated alternately, composed and clipped into the RGB box.

    From the paper: perturb only a*, b* (L* untouched); perturb low-frequency DCT coefficients;
    alternate the two updates; project the final perturbation into the RGB box; "concentrating on
    salient pixels" (abstract). Our choices (the paper gives none of them): composition
    ``x' = x + w * (delta_lab(x) + delta_dct)``, each part with the budgets and block layout of
    the ``lab`` and ``dct`` spaces; ``schedule="alternate"`` updates Lab on even iterations and
    DCT on odd ones (``"joint"`` updates both every step); ``w`` is 1 everywhere unless ``mask``
    is ``"face"``, ``"saliency"`` or a mask file, then ``mask_floor + (1 - mask_floor) * m``
    (:mod:`._mask`: the whole budget on the salient pixels, ``mask_floor`` of it elsewhere). The
    mask is computed once per image (cached on the image tensor's identity).

    Shape:
        x: ``(B, 3, H, W)``; param: ``(B, len(channels) + 3, Hp, Wp)``: the Lab part in the first
        channels (top-left ``H x W``, the padding unused), the DCT coefficients in the last three.
    """

    eps_ab: float | None = None
    channels: tuple[str, ...] = ("a", "b")
    block: int | None = 8
    keep: int = 4
    eps_coef: float | None = None
    color: str = "rgb"
    schedule: str = "alternate"
    mask: str | None = None
    mask_floor: float = 0.25

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule not in ("alternate", "joint"):
            raise InputError(f"dual schedule={self.schedule!r}: choose 'alternate' or 'joint'")
        check_mask(self.mask)
        if not 0.0 <= self.mask_floor <= 1.0:
            raise InputError(f"mask_floor={self.mask_floor!r} must be in [0, 1]")
        self._weights: dict[tuple, Tensor] = {}
        self.lab = Lab(eps=self.eps, eps_ab=self.eps_ab, channels=self.channels)
        self.dct = Dct(self.eps, self.block, self.keep, self.eps_coef, self.color)
        self.eps_ab, self.channels, self.eps_coef = (
            self.lab.eps_ab,
            self.lab.channels,
            self.dct.eps_coef,
        )

    def split(self, x: Tensor, param: Tensor) -> tuple[Tensor, Tensor]:
        """(Lab part ``(B, n, H, W)``, DCT part ``(B, 3, Hp, Wp)``) views of ``param``."""
        n = len(self.channels)
        return param[:, :n, : x.shape[-2], : x.shape[-1]], param[:, n:]

    def _join(self, lab: Tensor, dct: Tensor) -> Tensor:
        pad = (0, dct.shape[-1] - lab.shape[-1], 0, dct.shape[-2] - lab.shape[-2])
        return torch.cat([torch.nn.functional.pad(lab, pad), dct], dim=1)

    def init(self, x: Tensor, generator: torch.Generator, random_start: bool) -> Tensor:
        lab = self.lab.init(x, generator, random_start)
        return self._join(lab, self.dct.init(x, generator, random_start))

    def weight(self, x: Tensor) -> Tensor | None:
        """The per-pixel budget fraction ``(B,1,H,W)`` of ``x``, or ``None`` without a mask."""
        if self.mask is None:
            return None
        key = (x.data_ptr(), tuple(x.shape), x._version, str(x.device))
        if key not in self._weights:
            if len(self._weights) > 8:
                self._weights.clear()
            self._weights[key] = budget_weight(mask_of(self.mask, x), self.mask_floor).detach()
        return self._weights[key]

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        lab, dct = self.split(x, param)
        delta = self.lab.delta(x, lab) + self.dct.delta(x, dct)
        w = self.weight(x)
        if w is None:
            return rgb_box(x, x + delta, self.eps)
        return torch.clamp(x + w * torch.clamp(delta, -self.eps, self.eps), 0.0, 1.0)

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor, frac: float, it: int) -> Tensor:
        n = len(self.channels)
        do_lab = self.schedule == "joint" or it % 2 == 0
        do_dct = self.schedule == "joint" or it % 2 == 1
        lab, dct = param[:, :n], param[:, n:]
        if do_lab:
            lab = self.lab.step(lab, grad[:, :n], frac, it)
        if do_dct:
            dct = self.dct.step(dct, grad[:, n:], frac, it)
        return torch.cat([lab, dct], dim=1)

    @torch.no_grad()
    def project(self, x: Tensor, param: Tensor) -> Tensor:
        """Each part into its own budget and, alone, into the RGB box; the sum is clipped into
        the box by :meth:`to_image`."""
        lab, dct = self.split(x, param)
        return self._join(self.lab.project(x, lab), self.dct.project(x, dct))
