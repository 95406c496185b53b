"""Perturbation spaces: where the protection loop takes its sign-gradient steps.

A space owns the optimisation variable ``param`` in its own units and maps it to a perturbed image.
Whatever the space, :meth:`Space.to_image` always returns an image inside the RGB L-infinity box
``clamp(x + clamp(x' - x, -eps, eps), 0, 1)``, so ``eps`` (RGB, ``[0, 1]`` units) is the one budget
a user can rely on. Each space also has its own budget (``eps`` for ``rgb``, ``eps_ab`` for ``lab``,
``eps_coef`` for ``dct``); ``step(frac=...)`` moves by ``frac`` times that own budget.

* ``rgb``  -- plain PGD in pixels (Madry et al., arXiv 1706.06083).
* ``lab``  -- perturb only the chrominance a*, b* of CIE L*a*b* (kornia's differentiable
  conversion), leaving lightness L* untouched; the Lab stage of Anti-I2V's Dual-Space Perturbation
  (arXiv 2603.24570).
* ``dct``  -- perturb low-frequency DCT coefficients (u + v < keep) of 8x8 blocks; the frequency
  stage of Anti-I2V's Dual-Space Perturbation.
* ``dual`` -- both, updated alternately, composed and clipped into the RGB box (Anti-I2V's
  Dual-Space Perturbation; what is the paper's and what is ours is listed on :class:`Dual`).

Choices where the papers are silent (Anti-I2V publishes no code nor per-space budgets):

* ``eps_ab`` default ``None`` = ``128 * eps`` (4.0 Lab units for 8/255). Measured on random colours
  (float64, 64x64, worst corner ``(+-e, +-e)`` of the a*b* square), the largest RGB change per pixel
  has median 7/255 at e=2 and 15/255 at e=4; 44% of pixels can reach the 8/255 box at e=2, 92% at
  e=4. So 4.0 lets nearly every pixel reach the box; on colour-sensitive (dark, saturated) pixels
  the box, not eps_ab, is the binding limit.
* ``dct`` works on 8x8 blocks of the **RGB** channels by default (option ``color="ycbcr"``): 8x8 is
  JPEG's own grid, so low-frequency block coefficients are the ones JPEG quantises least and the
  perturbation lives where JPEG cannot remove it; the full-image DCT is ``block=None`` (then pick a
  larger ``keep``). ``keep=4`` frees 10 of a block's 64 coefficients (``u + v < keep``). Images whose
  sides are not multiples of the block are handled by a padded coefficient grid, cropped after the
  inverse DCT (so only the last partial blocks leak outside the mask).
* ``eps_coef`` default ``None`` = ``eps * sqrt(bh * bw)``: the DC value that shifts a whole block by
  exactly ``eps`` (0.251 for 8x8 and 8/255).
* ``project`` also shrinks the space's own perturbation until it fits the RGB box (per pixel for
  ``lab``, including the ``[0, 1]`` gamut, by three fixed-point rounds since lab -> rgb is
  nonlinear; per block for ``dct``, box only, exact since the DCT is linear), so the parameter does
  not drift where the final clamp would zero its gradient. ``to_image`` still clamps, so the box
  holds whatever ``param`` is.
* random starts are drawn on the generator's own device in float64, then moved to ``x``: a CPU
  generator can drive a GPU run, and the start does not depend on ``x``'s dtype.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from kornia.color import lab_to_rgb, rgb_to_lab
from torch import Tensor

from .errors import InputError
from .registry import SPACES

_LAB_INDEX = {"L": 0, "a": 1, "b": 2}
# JPEG's (BT.601 full-range) RGB -> YCbCr, offsets dropped: only changes are mapped.
_RGB_TO_YCC = (
    (0.299, 0.587, 0.114),
    (-0.299 / 1.772, -0.587 / 1.772, 0.886 / 1.772),
    (0.701 / 1.402, -0.587 / 1.402, -0.114 / 1.402),
)


def rgb_box(x: Tensor, x_prime: Tensor, eps: float) -> Tensor:
    """Clip ``x_prime`` into the RGB L-infinity ball of radius ``eps`` around ``x`` and into [0, 1].

    Shape:
        x, x_prime: ``(B, 3, H, W)``; returns ``(B, 3, H, W)``.
    """
    return torch.clamp(x + torch.clamp(x_prime - x, -eps, eps), 0.0, 1.0)


def _uniform(
    shape: tuple[int, ...], bound: float, generator: torch.Generator, like: Tensor
) -> Tensor:
    """Uniform draws in ``[-bound, bound]`` on the generator's device, moved to ``like``."""
    u = torch.rand(shape, generator=generator, device=generator.device, dtype=torch.float64)
    return ((2.0 * u - 1.0) * bound).to(device=like.device, dtype=like.dtype)


def _box_ratio(x: Tensor, delta: Tensor, eps: float, gamut: bool) -> Tensor:
    """Per-entry factor in [0, 1] that brings ``delta`` inside ``[-eps, eps]`` (and the gamut)."""
    hi = torch.full_like(x, eps)
    lo = -hi
    if gamut:
        hi = torch.minimum(hi, 1.0 - x)
        lo = torch.maximum(lo, -x)
    hi, lo = hi.clamp_min(0.0), lo.clamp_max(0.0)
    safe = torch.where(delta == 0, torch.ones_like(delta), delta)
    ratio = torch.ones_like(delta)
    ratio = torch.where(delta > hi, hi / safe, ratio)
    ratio = torch.where(delta < lo, lo / safe, ratio)
    return ratio.clamp(0.0, 1.0)


@dataclass
class Space:
    """Base class: a perturbation space. Subclasses override every method but ``describe``.

    Attributes:
        eps: radius of the RGB L-infinity box (``[0, 1]`` units) that always bounds the image.
    """

    eps: float = 8 / 255
    registry_name: ClassVar[str] = "space"

    def __post_init__(self) -> None:
        if not (0.0 < self.eps <= 1.0):
            raise InputError(
                f"eps={self.eps!r} is outside (0, 1]: it is the RGB budget in [0, 1] units "
                "(8/255 = 0.0314 is usual); pass e.g. eps=8/255"
            )

    def init(self, x: Tensor, generator: torch.Generator, random_start: bool) -> Tensor:
        """A fresh (leaf, no grad) optimisation variable: zeros, or random inside the own budget."""
        raise NotImplementedError

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        """Perturbed image, differentiable in ``param``, always inside the RGB box."""
        raise NotImplementedError

    def step(self, param: Tensor, grad: Tensor, frac: float, it: int) -> Tensor:
        """One sign-gradient descent step of ``frac`` times the own budget."""
        raise NotImplementedError

    def project(self, x: Tensor, param: Tensor) -> Tensor:
        """Bring ``param`` into the own budget (and, where possible, into the RGB box)."""
        raise NotImplementedError

    def describe(self) -> dict[str, Any]:
        """JSON-able configuration: the registry name and every dataclass field."""
        out: dict[str, Any] = {"name": self.registry_name}
        for f in dataclasses.fields(self):
            if f.init:
                value = getattr(self, f.name)
                out[f.name] = list(value) if isinstance(value, tuple) else value
        return out


@SPACES.register("rgb")
@dataclass
class Rgb(Space):
    """PGD directly on pixels: ``param`` is the RGB delta, own budget ``eps``.

    Shape:
        x: ``(B, 3, H, W)`` in [0, 1]; param: ``(B, 3, H, W)``.
    """

    def init(self, x: Tensor, generator: torch.Generator, random_start: bool) -> Tensor:
        if not random_start:
            return torch.zeros_like(x)
        return self.project(x, _uniform(tuple(x.shape), self.eps, generator, x))

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        return rgb_box(x, x + param, self.eps)

    @torch.no_grad()
    def step(self, param: Tensor, grad: Tensor, frac: float, it: int) -> Tensor:
        return param - frac * self.eps * torch.sign(grad)

    @torch.no_grad()
    def project(self, x: Tensor, param: Tensor) -> Tensor:
        return (rgb_box(x, x + param, self.eps) - x).detach()


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
        return self.project(x, _uniform(shape, self._budget(), generator, x))

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
            ratio = _box_ratio(x, self.delta(x, param), self.eps, gamut=True)
            param = param * ratio.amin(dim=1, keepdim=True)
        return param.detach()


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
        return self.project(x, _uniform(shape, self.budget(zeros), generator, x))

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


@SPACES.register("dual")
@dataclass
class Dual(Space):
    """Anti-I2V's Dual-Space Perturbation (arXiv 2603.24570): a Lab a*b* part plus a
    low-frequency DCT part, updated alternately, composed and clipped into the RGB box.

    From the paper: perturb only a*, b* (L* untouched); perturb low-frequency DCT coefficients;
    alternate the two updates; project the final perturbation into the RGB box. Our choices (the
    paper gives none of them): composition ``x' = x + delta_lab(x) + delta_dct``, each part with
    the budgets and block layout of the ``lab`` and ``dct`` spaces; ``schedule="alternate"``
    updates Lab on even iterations and DCT on odd ones (``"joint"`` updates both every step).

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

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.schedule not in ("alternate", "joint"):
            raise InputError(f"dual schedule={self.schedule!r}: choose 'alternate' or 'joint'")
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

    def to_image(self, x: Tensor, param: Tensor) -> Tensor:
        lab, dct = self.split(x, param)
        return rgb_box(x, x + self.lab.delta(x, lab) + self.dct.delta(x, dct), self.eps)

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
