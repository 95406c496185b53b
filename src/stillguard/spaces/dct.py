"""The ``dct`` perturbation space (see :mod:`stillguard.spaces` for the choices)."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor

from ..errors import InputError
from ..registry import SPACES
from .base import _RGB_TO_YCC, Space, rgb_box, uniform


def dct_matrix(n: int, dtype: torch.dtype, device: torch.device | str = "cpu") -> Tensor:
    """Orthonormal DCT-II matrix ``D`` (``X = D @ x``, ``x = D.T @ X``). Shape: ``(n, n)``."""
    k = torch.arange(n, dtype=torch.float64).unsqueeze(1)
    i = torch.arange(n, dtype=torch.float64).unsqueeze(0)
    d = torch.cos(math.pi * (2 * i + 1) * k / (2 * n)) * math.sqrt(2.0 / n)
    d[0] /= math.sqrt(2.0)
    return d.to(dtype=dtype, device=device)


def block_dct(x: Tensor, bh: int, bw: int, inverse: bool = False) -> Tensor:
    """(Inverse) orthonormal 2-D DCT of every ``bh x bw`` block, coefficients kept in place.

    Shape:
        x: ``(B, C, H, W)`` with ``H % bh == 0`` and ``W % bw == 0``; returns the same shape.
    """
    b, c, h, w = x.shape
    dh, dw = dct_matrix(bh, x.dtype, x.device), dct_matrix(bw, x.dtype, x.device)
    blocks = x.reshape(b, c, h // bh, bh, w // bw, bw)
    pattern = "kn,bcikjl,lm->bcinjm" if inverse else "nk,bcikjl,ml->bcinjm"
    return torch.einsum(pattern, dh, blocks, dw).reshape(b, c, h, w)


@SPACES.register("dct")
@dataclass
class Dct(Space):
    """Perturb low-frequency DCT coefficients (``u + v < keep``) of the RGB (or YCbCr) channels.

    Attributes:
        block: DCT block size (8 = JPEG's grid); ``None`` for one DCT of the whole image.
        keep: low-frequency cutoff, coefficients with ``u + v < keep`` are free (10 of 64 for 4).
        eps_coef: own L-infinity budget per coefficient; ``None`` means ``eps * sqrt(bh * bw)``
            (the DC value that shifts a whole block by ``eps``).
        color: ``"rgb"`` or ``"ycbcr"`` (JPEG's full-range BT.601 YCbCr; changes map linearly).

    Shape:
        x: ``(B, 3, H, W)``; param: ``(B, 3, Hp, Wp)``, ``H, W`` padded up to a multiple of
        ``block``, coefficients laid out block by block.
    """

    block: int | None = 8
    keep: int = 4
    eps_coef: float | None = None
    color: str = "rgb"

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.block is not None and not (isinstance(self.block, int) and self.block >= 2):
            raise InputError(f"dct block={self.block!r} must be an integer >= 2, or None")
        if not (isinstance(self.keep, int) and self.keep >= 1):
            raise InputError(f"dct keep={self.keep!r} must be an integer >= 1 (u + v < keep)")
        if self.color not in ("rgb", "ycbcr"):
            raise InputError(f"dct color={self.color!r}: choose 'rgb' or 'ycbcr'")
        if self.eps_coef is None and self.block is not None:
            self.eps_coef = self.eps * self.block
        if self.eps_coef is not None and not self.eps_coef > 0:
            raise InputError(f"dct eps_coef={self.eps_coef!r} must be > 0")

    def _sizes(self, h: int, w: int) -> tuple[int, int, int, int]:
        """(padded H, padded W, block h, block w)."""
        if self.block is None:
            return h, w, h, w
        ph, pw = -(-h // self.block) * self.block, -(-w // self.block) * self.block
        return ph, pw, self.block, self.block

    def mask(self, hp: int, wp: int, dtype: torch.dtype, device: torch.device) -> Tensor:
        """1 where a coefficient is free. Shape: ``(1, 1, hp, wp)``."""
        _, _, bh, bw = self._sizes(hp, wp)
        u = torch.arange(hp, device=device) % bh
        v = torch.arange(wp, device=device) % bw
        return ((u[:, None] + v[None, :]) < self.keep).to(dtype)[None, None]

    def budget(self, param: Tensor) -> float:
        """Own budget; for the full-image DCT with ``eps_coef=None`` it depends on the size."""
        if self.eps_coef is not None:
            return float(self.eps_coef)
        return self.eps * math.sqrt(param.shape[-2] * param.shape[-1])

    def pixel_delta(self, param: Tensor) -> Tensor:
        """Masked coefficients -> RGB change on the padded grid (linear, no clipping).

        Shape:
            param: ``(B, 3, Hp, Wp)``; returns ``(B, 3, Hp, Wp)``.
        """
        hp, wp = param.shape[-2:]
        _, _, bh, bw = self._sizes(hp, wp)
        d = block_dct(param * self.mask(hp, wp, param.dtype, param.device), bh, bw, inverse=True)
        if self.color == "ycbcr":  # linear, unclamped (kornia's ycbcr_to_rgb clamps to [0, 1])
            inv = torch.linalg.inv(torch.tensor(_RGB_TO_YCC, dtype=torch.float64))
            d = torch.einsum("rc,bchw->brhw", inv.to(d), d)
        return d

    def delta(self, x: Tensor, param: Tensor) -> Tensor:
        """RGB change before clipping. Shape: returns ``(B, 3, H, W)``."""
        return self.pixel_delta(param)[..., : x.shape[-2], : x.shape[-1]]

    def init(self, x: Tensor, generator: torch.Generator, random_start: bool) -> Tensor:
        hp, wp, _, _ = self._sizes(*x.shape[-2:])
        shape = (x.shape[0], 3, hp, wp)
        if not random_start:
            return torch.zeros(shape, dtype=x.dtype, device=x.device)
        zeros = torch.zeros(shape, dtype=x.dtype, device=x.device)
        return self.project(x, uniform(shape, self.budget(zeros), generator, x))

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        return rgb_box(x, x + self.delta(x, param), self.eps)

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor, frac: float, it: int) -> Tensor:
        return param - frac * self.budget(param) * torch.sign(grad)

    @torch.no_grad()
    def project(self, x: Tensor, param: Tensor) -> Tensor:
        """Zero outside the mask, clamp to ``eps_coef``, then scale each block down until its
        RGB change is within ``eps`` (exact: the map is linear). The [0, 1] clip is left to
        :meth:`to_image`, so a black pixel does not freeze its whole block."""
        hp, wp, bh, bw = self._sizes(*x.shape[-2:])
        eps_c = self.budget(param)
        param = param.clamp(-eps_c, eps_c) * self.mask(hp, wp, param.dtype, param.device)
        peak = self.pixel_delta(param).abs().amax(dim=1)  # (B, Hp, Wp)
        b = peak.shape[0]
        peak = peak.reshape(b, hp // bh, bh, wp // bw, bw).amax(dim=(2, 4))
        scale = torch.where(peak > self.eps, self.eps / peak.clamp_min(1e-12), 1.0)
        scale = scale.repeat_interleave(bh, 1).repeat_interleave(bw, 2)[:, None]
        return (param * scale).detach()
