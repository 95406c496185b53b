"""LPIPS perceptual distance (Zhang et al., arXiv 1801.03924), written in torch, weights from a folder.

The network: a VGG16 or AlexNet feature trunk (torchvision's layer layout and numbering; torchvision
itself is not used), the LPIPS input scaling (``x`` in [-1, 1], minus ``shift``, over ``scale``), the
five ReLU outputs LPIPS taps (VGG16: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3; AlexNet: relu1..5),
each unit-normalised along channels, the squared difference weighted by a learned non-negative 1x1
"linear" head per layer, averaged over space and summed over layers. No resizing: LPIPS is computed
at the input's size (both inputs must share it).

Folder layout (``--lpips DIR`` or ``STILLGUARD_LPIPS``): ``config.json`` ``{"net": "vgg"}`` (or
``"alex"``) and ``*.safetensors`` with keys

* ``features.{i}.weight`` / ``features.{i}.bias``: the trunk's convolutions, ``i`` the index in
  torchvision's ``vgg16().features`` (0, 2, 5, 7, 10, 12, 14, 17, 19, 21, 24, 26, 28) or
  ``alexnet().features`` (0, 3, 6, 8, 10);
* ``lin{k}.weight``, ``k`` = 0..4: the heads, shape ``(1, C_k, 1, 1)``.

:func:`convert_official` builds that dict from the official layout: the ``lpips`` package's
``LPIPS`` state dict (``net.slice{n}.{i}.*`` + ``lin{k}.model.1.weight``), or a torchvision trunk
state dict plus the package's ``weights/v0.1/{vgg,alex}.pth`` heads; load those pickles with
``torch.load(..., weights_only=True)`` where you trust them, convert, then ``save_file``.

Choice: the tiny model keeps the layer structure and divides every width by 16 (tests only).
"""

from __future__ import annotations

import os
import re
from pathlib import Path

import torch
from torch import Tensor, nn

from ..errors import InputError, ModelError
from . import _folder, _prep

KIND, WHAT = "lpips", "LPIPS network"
#: per net: the trunk (an int = conv output channels, "M" = 2x2 max-pool) and the tapped indices
_VGG = (64, 64, "M", 128, 128, "M", 256, 256, 256, "M", 512, 512, 512, "M", 512, 512, 512)
_SHIFT = (-0.030, -0.088, -0.188)
_SCALE = (0.458, 0.448, 0.450)


def _vgg(div: int) -> tuple[nn.Sequential, list[int], list[int]]:
    layers: list[nn.Module] = []
    c_in = 3
    for v in _VGG:
        if v == "M":
            layers.append(nn.MaxPool2d(2, 2))
            continue
        c = max(1, int(v) // div)
        layers += [nn.Conv2d(c_in, c, 3, padding=1), nn.ReLU(inplace=False)]
        c_in = c
    # the last ReLU of each stage: relu1_2, relu2_2, relu3_3, relu4_3, relu5_3
    taps = [3, 8, 15, 22, 29]
    chans = [max(1, c // div) for c in (64, 128, 256, 512, 512)]
    return nn.Sequential(*layers), taps, chans


def _alex(div: int) -> tuple[nn.Sequential, list[int], list[int]]:
    c = [max(1, v // div) for v in (64, 192, 384, 256, 256)]
    layers = [
        nn.Conv2d(3, c[0], 11, stride=4, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[0], c[1], 5, padding=2), nn.ReLU(), nn.MaxPool2d(3, 2),
        nn.Conv2d(c[1], c[2], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[2], c[3], 3, padding=1), nn.ReLU(),
        nn.Conv2d(c[3], c[4], 3, padding=1), nn.ReLU(),
    ]  # fmt: skip
    return nn.Sequential(*layers), [1, 4, 7, 9, 11], c


class LpipsNet(nn.Module):
    """The LPIPS network. ``forward(x, y)``: ``(B,3,H,W)`` x2 in [0, 1] -> ``(B,)`` distances."""

    def __init__(self, net: str = "vgg", width_div: int = 1) -> None:
        super().__init__()
        build = {"vgg": _vgg, "alex": _alex}.get(net)
        if build is None:
            raise ModelError(f"LPIPS net {net!r} is not supported: use 'vgg' or 'alex'")
        self.net_name, self.width_div = net, width_div
        self.features, self.taps, chans = build(width_div)
        for k, c in enumerate(chans):
            self.register_module(f"lin{k}", nn.Conv2d(c, 1, 1, bias=False))
        self.register_buffer("shift", torch.tensor(_SHIFT).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("scale", torch.tensor(_SCALE).view(1, 3, 1, 1), persistent=False)

    def taps_of(self, x: Tensor) -> list[Tensor]:
        h, out = (2 * x - 1 - self.shift) / self.scale, []
        for i, layer in enumerate(self.features):
            h = layer(h)
            if i in self.taps:
                out.append(h)
            if i >= self.taps[-1]:
                break
        return out

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        total = x.new_zeros(x.shape[0])
        for k, (a, b) in enumerate(zip(self.taps_of(x), self.taps_of(y), strict=True)):
            a = a / (a.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            b = b / (b.pow(2).sum(1, keepdim=True).sqrt() + 1e-10)
            total = total + getattr(self, f"lin{k}")((a - b) ** 2).mean(dim=(1, 2, 3))
        return total


def convert_official(
    state: dict[str, Tensor], heads: dict[str, Tensor] | None = None
) -> dict[str, Tensor]:
    """Official LPIPS / torchvision keys -> this module's keys (see the module docstring).

    ``state``: an ``lpips.LPIPS`` state dict, or a torchvision ``vgg16``/``alexnet`` state dict;
    ``heads``: the package's ``{vgg,alex}.pth`` dict (``lin{k}.model.1.weight``) when ``state`` has none.
    """
    out: dict[str, Tensor] = {}
    for key, value in {**state, **(heads or {})}.items():
        if m := re.fullmatch(r"net\.slice\d\.(\d+)\.(weight|bias)", key):
            out[f"features.{m[1]}.{m[2]}"] = value
        elif m := re.fullmatch(r"(?:module\.)?features\.(\d+)\.(weight|bias)", key):
            out[f"features.{m[1]}.{m[2]}"] = value
        elif m := re.fullmatch(r"(?:module\.)?lin(\d)\.model\.1\.weight", key):
            out[f"lin{m[1]}.weight"] = value
    return out


class Lpips:
    """``Lpips.from_folder(dir)(x, y) -> (B,)`` perceptual distances (0: identical)."""

    def __init__(self, net: LpipsNet, folder: Path | None = None) -> None:
        self.net = net.eval().requires_grad_(False)
        self.folder = folder

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str] | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32) -> Lpips:  # fmt: skip
        path = _folder.resolve(KIND, folder, WHAT)
        cfg = _folder.read_config(path, WHAT, KIND)
        net = LpipsNet(str(cfg.get("net", "vgg")), int(cfg.get("width_div", 1)))
        _folder.load_strict(net, _folder.load_state(path, KIND), path, KIND)
        return cls(net.to(device=device, dtype=dtype), path)

    @classmethod
    def tiny(cls, seed: int = 0, net: str = "vgg") -> Lpips:
        """The same layer structure, widths / 16, random weights (heads made non-negative)."""
        torch.manual_seed(seed)
        model = LpipsNet(net, width_div=16)
        for k in range(5):
            w = getattr(model, f"lin{k}").weight
            w.data = w.data.abs()
        return cls(model)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        cfg = {"net": self.net.net_name, "width_div": self.net.width_div}
        return _folder.save_state(self.net, Path(folder), cfg)

    def __call__(self, x: Tensor, y: Tensor) -> Tensor:
        _prep.check(x, "first image")
        _prep.check(y, "second image")
        if x.shape != y.shape:
            raise InputError(
                f"LPIPS compares images of one size, got {tuple(x.shape)} and {tuple(y.shape)}"
            )
        p = next(self.net.parameters())
        return self.net(x.to(p), y.to(p))
