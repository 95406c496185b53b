"""Robustness transforms: differentiable versions for EOT, exact versions for evaluation.

Each transform is a dataclass with two faces:

* ``__call__(x, generator)`` -- differentiable, random parameters drawn from ``generator``; the
  protection loop averages its loss over these draws (Expectation over Transformation, Athalye et
  al., arXiv 1707.07397) so the perturbation survives the purification.
* ``real(x)`` -- the exact, deterministic purification an attacker would run on the saved image
  (Pillow JPEG, Pillow resampling, ...). Its output is rounded to 8 bits, as the purified file
  would be.

Choices made here:

* ``jpeg`` uses kornia's ``jpeg_codec_differentiable`` (Reich et al., arXiv 2309.06978), which
  models 4:2:0 chroma subsampling and the standard quality-scaled tables; ``real`` is Pillow at the
  same quality with 4:2:0 subsampling.
* ``resize`` goes down with antialiased bicubic and back up with bicubic in torch; ``real`` uses
  Pillow LANCZOS down and BICUBIC up.
* ``blur`` uses a normalised Gaussian of size ``2 * ceil(3 sigma) + 1`` with reflect padding; ``real``
  is the same kernel in float64 (Pillow's GaussianBlur is a box-filter approximation).
* ``crop`` shifts the image by up to ``max_shift`` pixels with reflect padding (size kept); ``real``
  shifts by ``(max_shift, max_shift)``.
* ``noisy-upscale`` is a cheap stand-in for the "noisy upscaling" purification of Hoenig et al.
  (arXiv 2406.12027): Gaussian noise, then bicubic down and up (they upscale with a diffusion model,
  which is not available offline). ``real`` draws its noise from a fixed seed (``REAL_SEED``).
* ``random`` applies one of its ``choices`` to each sample; ``real`` draws with ``REAL_SEED``.

Spec strings (:func:`parse_transform`): ``name``, ``name:value`` (first field), ``name:k=v,k=v``, and
``random:jpeg:75+resize:0.5`` for ``random``.
"""

from __future__ import annotations

import dataclasses
import io
import math
from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np
import torch
import torch.nn.functional as F
from kornia.enhance import jpeg_codec_differentiable
from PIL import Image
from torch import Tensor

from .errors import InputError
from .registry import TRANSFORMS

REAL_SEED = 0
DEFAULT_PURIFICATIONS: tuple[str, ...] = (
    "jpeg:95",
    "jpeg:75",
    "jpeg:50",
    "resize:0.5",
    "resize:0.75",
    "blur:1.0",
    "noisy-upscale",
)


def quantize8(x: Tensor) -> Tensor:
    """Round to the nearest 8-bit level, as saving a PNG would. Shape: any; same shape out."""
    return torch.round(x.clamp(0.0, 1.0) * 255.0) / 255.0


def _to_pil(img: Tensor) -> Image.Image:
    arr = torch.round(img.detach().clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu()
    return Image.fromarray(arr.numpy(), mode="RGB")


def _from_pil(img: Image.Image, like: Tensor) -> Tensor:
    arr = torch.from_numpy(np.asarray(img.convert("RGB"), dtype=np.uint8).copy())
    return (arr.permute(2, 0, 1).to(dtype=torch.float64) / 255.0).to(like)


def _per_image_pil(x: Tensor, fn: Any) -> Tensor:
    """Apply a PIL -> PIL function to each image of a batch. Shape: ``(B, 3, H, W)``."""
    return torch.stack([_from_pil(fn(_to_pil(img)), x) for img in x])


def _pad(x: Tensor, pad: tuple[int, int, int, int]) -> Tensor:
    """Reflect padding, falling back to replicate when the image is too small to reflect."""
    h, w = x.shape[-2:]
    mode = "reflect" if max(pad[0], pad[1]) < w and max(pad[2], pad[3]) < h else "replicate"
    return F.pad(x, pad, mode=mode)


def _down_up(x: Tensor, scale: float) -> Tensor:
    h, w = x.shape[-2:]
    size = (max(1, round(h * scale)), max(1, round(w * scale)))
    down = F.interpolate(x, size=size, mode="bicubic", align_corners=False, antialias=True)
    return F.interpolate(down, size=(h, w), mode="bicubic", align_corners=False).clamp(0.0, 1.0)


def gaussian_kernel1d(sigma: float, dtype: torch.dtype, device: torch.device) -> Tensor:
    """Normalised 1-D Gaussian of length ``2 * ceil(3 sigma) + 1``. Shape: ``(K,)``."""
    radius = max(1, math.ceil(3.0 * sigma))
    t = torch.arange(-radius, radius + 1, dtype=torch.float64)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return (k / k.sum()).to(dtype=dtype, device=device)


def gaussian_blur(x: Tensor, sigma: float) -> Tensor:
    """Separable Gaussian blur with reflect padding. Shape: ``(B, C, H, W)`` -> same."""
    k = gaussian_kernel1d(sigma, x.dtype, x.device)
    r, c = k.numel() // 2, x.shape[1]
    y = F.conv2d(_pad(x, (r, r, 0, 0)), k.view(1, 1, 1, -1).repeat(c, 1, 1, 1), groups=c)
    return F.conv2d(_pad(y, (0, 0, r, r)), k.view(1, 1, -1, 1).repeat(c, 1, 1, 1), groups=c)


def _shift(x: Tensor, dy: int, dx: int, m: int) -> Tensor:
    h, w = x.shape[-2:]
    padded = _pad(x, (m, m, m, m))
    return padded[..., m + dy : m + dy + h, m + dx : m + dx + w]


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


@TRANSFORMS.register("identity")
@dataclass
class Identity(Transform):
    """No purification (the baseline row of an evaluation)."""


@TRANSFORMS.register("jpeg")
@dataclass
class Jpeg(Transform):
    """JPEG compression at ``quality`` (1..100), 4:2:0 chroma subsampling."""

    quality: int = 75

    def __post_init__(self) -> None:
        if isinstance(self.quality, bool) or not isinstance(self.quality, int):
            raise InputError(f"jpeg quality must be an integer, got {self.quality!r}; e.g. jpeg:75")
        if not 1 <= self.quality <= 100:
            raise InputError(
                f"jpeg quality {self.quality} is outside 1..100 (higher keeps more detail); "
                "use e.g. jpeg:75"
            )

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        q = torch.tensor([float(self.quality)], dtype=x.dtype, device=x.device)
        return jpeg_codec_differentiable(x, q).clamp(0.0, 1.0)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        def codec(img: Image.Image) -> Image.Image:
            buf = io.BytesIO()
            img.save(buf, format="JPEG", quality=self.quality, subsampling=2)
            buf.seek(0)
            return Image.open(buf).convert("RGB")

        return _per_image_pil(x, codec)


@TRANSFORMS.register("resize")
@dataclass
class Resize(Transform):
    """Downscale by ``scale`` (0 < scale <= 1) and upscale back to the original size."""

    scale: float = 0.5

    def __post_init__(self) -> None:
        self.scale = _float(self.scale, "resize scale")
        if not 0.0 < self.scale <= 1.0:
            raise InputError(
                f"resize scale {self.scale} is outside (0, 1]: it is the downscale factor "
                "before upscaling back; use e.g. resize:0.5"
            )

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return _down_up(x, self.scale)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        h, w = x.shape[-2:]
        size = (max(1, round(w * self.scale)), max(1, round(h * self.scale)))
        return _per_image_pil(
            x,
            lambda im: im.resize(size, Image.Resampling.LANCZOS).resize(
                (w, h), Image.Resampling.BICUBIC
            ),
        )


@TRANSFORMS.register("blur")
@dataclass
class Blur(Transform):
    """Gaussian blur with standard deviation ``sigma`` pixels (> 0)."""

    sigma: float = 1.0

    def __post_init__(self) -> None:
        self.sigma = _float(self.sigma, "blur sigma")
        if not 0.0 < self.sigma <= 50.0:
            raise InputError(
                f"blur sigma {self.sigma} is outside (0, 50] pixels; use e.g. blur:1.0"
            )

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return gaussian_blur(x, self.sigma).clamp(0.0, 1.0)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        return quantize8(gaussian_blur(x.to(torch.float64), self.sigma)).to(x)


@TRANSFORMS.register("crop")
@dataclass
class Crop(Transform):
    """Shift by up to ``max_shift`` pixels each way with reflect padding (the size is kept)."""

    max_shift: int = 4

    def __post_init__(self) -> None:
        if isinstance(self.max_shift, bool) or not isinstance(self.max_shift, int):
            raise InputError(f"crop max_shift must be an integer, got {self.max_shift!r}")
        if not 0 <= self.max_shift <= 64:
            raise InputError(f"crop max_shift {self.max_shift} is outside 0..64; use e.g. crop:4")

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        m = self.max_shift
        shifts = torch.randint(
            -m, m + 1, (x.shape[0], 2), generator=generator, device=generator.device
        )
        return torch.cat(
            [
                _shift(x[i : i + 1], int(dy), int(dx), m)
                for i, (dy, dx) in enumerate(shifts.tolist())
            ]
        )

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        return quantize8(_shift(x, self.max_shift, self.max_shift, self.max_shift))


@TRANSFORMS.register("noisy-upscale")
@dataclass
class NoisyUpscale(Transform):
    """Add Gaussian noise of std ``noise``, downscale by ``scale``, upscale back (Hoenig et al.)."""

    noise: float = 0.05
    scale: float = 0.5

    def __post_init__(self) -> None:
        self.noise = _float(self.noise, "noisy-upscale noise")
        self.scale = _float(self.scale, "noisy-upscale scale")
        if not 0.0 <= self.noise <= 1.0:
            raise InputError(f"noisy-upscale noise {self.noise} is outside [0, 1]; e.g. 0.05")
        if not 0.0 < self.scale <= 1.0:
            raise InputError(f"noisy-upscale scale {self.scale} is outside (0, 1]; e.g. 0.5")

    def _apply(self, x: Tensor, generator: torch.Generator) -> Tensor:
        z = torch.randn(x.shape, generator=generator, device=generator.device, dtype=torch.float64)
        return _down_up((x + self.noise * z.to(x)).clamp(0.0, 1.0), self.scale)

    def __call__(self, x: Tensor, generator: torch.Generator) -> Tensor:
        return self._apply(x, generator)

    @torch.no_grad()
    def real(self, x: Tensor) -> Tensor:
        g = torch.Generator().manual_seed(REAL_SEED)
        return quantize8(self._apply(x.to(torch.float64), g)).to(x)


@TRANSFORMS.register("random")
@dataclass
class Random(Transform):
    """Per sample, one transform drawn uniformly from ``choices`` (spec strings)."""

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


def _float(value: Any, what: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise InputError(f"{what} must be a number, got {value!r}")
    return float(value)


def _convert(text: str, ftype: str, name: str, what: str) -> Any:
    try:
        if ftype == "int":
            return int(text)
        if ftype == "float":
            return float(text)
    except ValueError:
        raise InputError(f"{what}: {name}={text!r} is not a valid {ftype}") from None
    return text


def parse_transform(spec: str) -> Transform:
    """Build a transform from a spec string.

    Accepted forms: ``"jpeg"`` (defaults), ``"jpeg:75"`` (first field), ``"noisy-upscale:noise=0.1,
    scale=0.25"`` (named fields), ``"random:jpeg:75+resize:0.5"``.

    Raises:
        StillguardError: unknown name (with close matches) or a bad value (InputError).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(
            f"a transform spec must be a non-empty string like 'jpeg:75', got {spec!r}"
        )
    name, _, args = spec.strip().partition(":")
    cls = TRANSFORMS.get(name.strip())
    if not args:
        return cls()
    if cls is Random:
        return Random(choices=tuple(a.strip() for a in args.split("+")))
    fields = [f for f in dataclasses.fields(cls) if f.init]
    if not fields:
        raise InputError(f"transform {name!r} takes no value, got {spec!r}; write just {name!r}")
    kwargs: dict[str, Any] = {}
    for i, part in enumerate(args.split(",")):
        key, eq, text = part.partition("=")
        if not eq:
            if i >= len(fields) or kwargs:
                raise InputError(f"{spec!r}: only the first value may be unnamed; use key=value")
            key, text = fields[i].name, part
        key = key.strip()
        match = [f for f in fields if f.name == key]
        if not match:
            valid = ", ".join(f.name for f in fields)
            raise InputError(
                f"{spec!r}: transform {name!r} has no option {key!r} (options: {valid})"
            )
        kwargs[key] = _convert(text.strip(), str(match[0].type), key, spec)
    return cls(**kwargs)
