"""The bench's photos: a folder of the user's, or a builtin set (checked and decoded before any work).

Builtin sets (nothing downloaded; scikit-image's sample photos ship in its wheel):

* ``builtin`` (or ``builtin:N``, the first N): the held-out set of the efficacy study, four
  scikit-image photos (chelsea, coffee, rocket, camera as grey RGB; centre-cropped, Lanczos to 64x64)
  and four synthetic scenes of the toy's held-out stream (data seed 7919; training used 0),
  alternating so any prefix mixes both; none of them was used to tune a method;
* ``faces``: scikit-image's ``astronaut`` (one frontal face), centre-cropped, Lanczos to 256x256,
  so the face metrics have a face to look for; the demo uses the same photo, so it is not held out;
* ``sample``: the bundled sample photo (256x256, the same astronaut).

A folder: every image file in it (not its sub-folders), sorted by name, each read and validated by
:func:`stillguard.images.load_image`; an empty folder or an unreadable photo stops the bench with
one line before anything is written.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from ...errors import InputError

NATURAL = ("chelsea", "coffee", "rocket", "camera")
SYNTH_SEED, SYNTH_INDICES = 7919, (0, 1, 2, 3)
BUILTIN = ("builtin", "faces", "sample")


@dataclass
class Photo:
    """One photo: a unique name, where it came from, the 8-bit image and its hash."""

    name: str
    source: str
    image: Tensor  # (1, 3, H, W) in [0, 1], 8-bit valued
    sha256: str


def _photo(name: str, source: str, img: Tensor) -> Photo:
    img = (torch.round(img.clamp(0, 1) * 255) / 255).float()
    digest = hashlib.sha256(np.ascontiguousarray((img * 255).byte().numpy()).tobytes()).hexdigest()
    return Photo(name, source, img, digest)


def held_out(n: int | None = None) -> list[Photo]:
    """The efficacy study's held-out photos (see the module docstring). Shape: ``(1,3,64,64)``."""
    from ...toy.training import quality

    out = []
    for photo, idx in zip(NATURAL, SYNTH_INDICES, strict=True):
        img = quality.u8_to_tensor(quality.photo(photo, 64).copy())[None]
        out.append(_photo(photo, f"skimage.data.{photo}(), centre crop, Lanczos to 64x64", img))
        img = quality.synthetic_case(SYNTH_SEED, idx)[0]
        out.append(
            _photo(f"synthetic-{idx}", f"toy held-out stream, seed {SYNTH_SEED}, #{idx}", img)
        )
    return out[:n] if n else out


def _faces() -> list[Photo]:
    from ...toy.training import quality

    img = quality.u8_to_tensor(quality.photo("astronaut", 256).copy())[None]
    return [_photo("astronaut", "skimage.data.astronaut(), centre crop, Lanczos to 256x256", img)]


def _sample() -> list[Photo]:
    from ...images import load_image
    from ..demo import sample_image_path

    return [
        _photo("sample", "stillguard/assets/sample.png", load_image(sample_image_path()).tensor)
    ]


def _folder(path: Path) -> list[Photo]:
    from ...images import is_image_name, load_image

    if not path.is_dir():
        raise InputError(f"--photos {path}: not a folder (or a builtin set: {', '.join(BUILTIN)})")
    files = sorted(p for p in path.iterdir() if p.is_file() and is_image_name(p))
    if not files:
        raise InputError(f"--photos {path}: no image files in it (png, jpg, webp, ...)")
    out, seen = [], set()
    for f in files:
        name = f.stem if f.stem not in seen else f.name
        seen.add(name)
        out.append(_photo(name, f.name, load_image(f).tensor))  # InputError names the file
    return out


def load_photos(spec: str) -> list[Photo]:
    """``builtin[:N]``, ``faces``, ``sample`` or a folder -> the photos, all decoded and checked."""
    name, _, count = spec.partition(":")
    if name == "builtin":
        try:
            n = int(count) if count else None
        except ValueError:
            raise InputError(f"--photos {spec!r}: write builtin or builtin:N (N = 1..8)") from None
        if n is not None and not 1 <= n <= 8:
            raise InputError(f"--photos {spec!r}: the builtin set has 8 photos; N must be 1..8")
        return held_out(n)
    if spec == "faces":
        return _faces()
    if spec == "sample":
        return _sample()
    return _folder(Path(spec).expanduser())
