"""The protector's network: a small fully convolutional U-Net (see :mod:`stillguard.protector`).

* input: the photo mapped to ``[-1, 1]`` plus two coordinate channels (``x``, ``y`` in
  ``[-1, 1]`` across the photo, CoordConv), so that it can place a pattern where the target's
  positional embeddings expect it and still take any size;
* ``levels`` stride-2 levels (3: a receptive field covering a 64x64 photo), a residual block per
  level, GroupNorm and SiLU, nearest upsampling with skip connections, odd sizes handled by
  resizing each upsampled map to its skip's size;
* output: the raw perturbation, which :class:`~stillguard.protector.Protector` maps through
  ``eps * tanh`` into the budget; the last convolution starts at zero, so an untrained network
  perturbs nothing.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from .errors import InputError


@dataclass(frozen=True)
class Architecture:
    """Sizes of a :class:`ProtectorNet`.

    Attributes:
        width: channels at full resolution (doubled at each level, capped at ``4 * width``).
        levels: stride-2 levels (3: a 64x64 photo is seen at 8x8 in the middle).
        coords: add the two coordinate channels to the input.
    """

    width: int = 16
    levels: int = 3
    coords: bool = True

    def __post_init__(self) -> None:
        for name, lo, hi in (("width", 4, 256), ("levels", 1, 6)):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or not lo <= v <= hi:
                raise InputError(f"protector {name} must be an integer in [{lo}, {hi}], got {v!r}")
        if not isinstance(self.coords, bool):
            raise InputError(f"protector coords must be true or false, got {self.coords!r}")


def _norm(ch: int) -> nn.GroupNorm:
    return nn.GroupNorm(math.gcd(8, ch), ch)


class _Res(nn.Module):
    """Two 3x3 convolutions with GroupNorm and SiLU, added to the input."""

    def __init__(self, ch: int) -> None:
        super().__init__()
        self.body = nn.Sequential(
            _norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
            _norm(ch), nn.SiLU(), nn.Conv2d(ch, ch, 3, padding=1),
        )  # fmt: skip

    def forward(self, h: Tensor) -> Tensor:
        return h + self.body(h)


class ProtectorNet(nn.Module):
    """Photo -> raw perturbation (before ``eps * tanh``); see the module docstring.

    Shape:
        ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)``, any ``H, W >= 1``.
    """

    def __init__(self, arch: Architecture | None = None) -> None:
        super().__init__()
        self.arch = arch = arch or Architecture()
        chans = [min(arch.width * 2**i, 4 * arch.width) for i in range(arch.levels + 1)]
        self.stem = nn.Conv2d(3 + 2 * arch.coords, chans[0], 3, padding=1)
        self.enc = nn.ModuleList(_Res(c) for c in chans[:-1])
        self.down = nn.ModuleList(
            nn.Conv2d(a, b, 3, stride=2, padding=1) for a, b in zip(chans, chans[1:], strict=False)
        )
        self.mid = nn.Sequential(_Res(chans[-1]), _Res(chans[-1]))
        self.up = nn.ModuleList(
            nn.Conv2d(b, a, 3, padding=1) for a, b in zip(chans, chans[1:], strict=False)
        )
        self.dec = nn.ModuleList(nn.Sequential(nn.Conv2d(2 * c, c, 1), _Res(c)) for c in chans[:-1])
        self.out = nn.Sequential(_norm(chans[0]), nn.SiLU(), nn.Conv2d(chans[0], 3, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor) -> Tensor:
        h = x * 2 - 1
        if self.arch.coords:
            b, _, hh, ww = x.shape
            ys = torch.linspace(-1, 1, hh, device=x.device, dtype=x.dtype)
            xs = torch.linspace(-1, 1, ww, device=x.device, dtype=x.dtype)
            grid = torch.stack(torch.meshgrid(ys, xs, indexing="ij"))
            h = torch.cat([h, grid.expand(b, -1, -1, -1)], 1)
        h = self.stem(h)
        skips = []
        for enc, down in zip(self.enc, self.down, strict=True):
            h = enc(h)
            skips.append(h)
            h = down(h)
        h = self.mid(h)
        for i in reversed(range(len(skips))):
            skip = skips[i]
            h = nn.functional.interpolate(h, size=skip.shape[-2:], mode="nearest")
            h = self.dec[i](torch.cat([self.up[i](h), skip], 1))
        return self.out(h)
