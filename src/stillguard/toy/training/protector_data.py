"""Training photos for a protector: the toy's synthetic scenes, a folder of photos, or a mix.

Every photo is a deterministic function of ``(seed, index)``, so a training run resumed at step
``s`` draws exactly the photos an uninterrupted run draws (no random state to save).

* **synthetic**: frame 0 of :func:`stillguard.toy.training.data.make_video` from the protector's
  own seed stream (:data:`STREAM_PROTECTOR`, :data:`STREAM_PROTECTOR_VALIDATION`), disjoint from the
  streams the toy models were trained and evaluated on (VAE 0, latents 1, validation 2, held-out
  3), so the held-out scenes of ``docs/efficacy.md`` and ``docs/amortized.md`` are never drawn;
* **folder**: the image files of a folder (read and validated once by
  :func:`stillguard.images.load_image`); each draw is a random crop of a random photo (side
  ``U(0.35, 1)`` of the largest crop of the working size's aspect), flipped left-right with odds
  1/2, resized to the working size (antialiased bicubic);
* **mix**: draw ``i`` is synthetic with probability ``synthetic`` (the ``--synthetic`` share),
  else a folder crop.

Needs numpy and opencv (the synthetic renderer); training-time only.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stillguard.errors import InputError
from stillguard.toy.training.data import SceneConfig, make_video, scene_rng

#: seed streams of the protector's synthetic training and validation photos
STREAM_PROTECTOR, STREAM_PROTECTOR_VALIDATION = 4, 5
#: sub-stream for the folder draws and the synthetic/folder choice
_STREAM_FOLDER = 6


@dataclass
class Photos:
    """Deterministic training photos at one working size (see the module docstring).

    Attributes:
        size: ``(H, W)`` of every photo drawn.
        seed: data seed.
        folder: a folder of photos, or ``None`` (synthetic only).
        synthetic: share of synthetic draws in ``[0, 1]`` (1 without a folder).
    """

    size: tuple[int, int] = (64, 64)
    seed: int = 0
    folder: Path | None = None
    synthetic: float = 1.0
    _photos: list[Tensor] = field(default_factory=list, init=False, repr=False)
    _names: list[str] = field(default_factory=list, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0.0 <= self.synthetic <= 1.0:
            raise InputError(f"the synthetic share must be in [0, 1], got {self.synthetic}")
        if self.folder is None:
            if self.synthetic < 1.0:
                raise InputError("a synthetic share under 1 needs a folder of photos (--photos)")
            return
        from stillguard.images import image_extensions, load_image

        folder = Path(self.folder)
        if not folder.is_dir():
            raise InputError(f"--photos {folder}: not a folder; give a folder of photos")
        exts = image_extensions()
        files = sorted(p for p in folder.iterdir() if p.is_file() and p.suffix.lower() in exts)
        if not files:
            raise InputError(f"--photos {folder}: no image files in it")
        for p in files:
            self._photos.append(load_image(p).tensor)
            self._names.append(p.name)

    def names(self) -> list[str]:
        """File names of the folder's photos (empty without a folder)."""
        return list(self._names)

    def describe(self) -> dict[str, Any]:
        """JSON-able record of where the photos come from (for the protector's file)."""
        out: dict[str, Any] = {"size": list(self.size), "seed": self.seed}
        out["synthetic"] = {"share": self.synthetic, "stream": STREAM_PROTECTOR}
        if self.folder is not None:
            out["folder"] = {"photos": self.names(), "crop_side": [0.35, 1.0], "flip": True}
        return out

    def batch(self, index: int, count: int) -> Tensor:
        """Photos ``index .. index + count - 1``. Shape: ``(count, 3, H, W)`` in [0, 1]."""
        return torch.cat([self.photo(index + i) for i in range(count)])

    def photo(self, index: int) -> Tensor:
        """Training photo ``index``. Shape: ``(1, 3, H, W)`` in [0, 1], 8-bit valued."""
        rng = scene_rng(self.seed, _STREAM_FOLDER, index)
        if not self._photos or rng.random() < self.synthetic:
            return synthetic(self.seed, STREAM_PROTECTOR, index, self.size)
        return self._crop(rng)

    def validation(self, count: int) -> Tensor:
        """A fixed validation set: synthetic scenes of the validation stream, then (with a
        folder) one centre view per photo, up to ``count``. Shape: ``(n, 3, H, W)``."""
        out = [self._centre(p) for p in self._photos[: count // 2]]
        i = 0
        while len(out) < count:
            out.append(synthetic(self.seed, STREAM_PROTECTOR_VALIDATION, i, self.size))
            i += 1
        return torch.cat(out)

    def _crop(self, rng: np.random.Generator) -> Tensor:
        img = self._photos[int(rng.integers(len(self._photos)))]
        h, w = img.shape[-2:]
        aspect = self.size[1] / self.size[0]
        ch = min(h, w / aspect)  # the largest crop of the working aspect
        s = float(rng.uniform(0.35, 1.0))
        ch, cw = max(1, round(ch * s)), max(1, round(ch * s * aspect))
        top = int(rng.integers(0, h - ch + 1))
        left = int(rng.integers(0, w - cw + 1))
        crop = img[..., top : top + ch, left : left + cw]
        if rng.random() < 0.5:
            crop = crop.flip(-1)
        return _resize(crop, self.size)

    def _centre(self, img: Tensor) -> Tensor:
        h, w = img.shape[-2:]
        aspect = self.size[1] / self.size[0]
        ch = int(min(h, w / aspect))
        cw = int(ch * aspect)
        top, left = (h - ch) // 2, (w - cw) // 2
        return _resize(img[..., top : top + ch, left : left + cw], self.size)


def synthetic(seed: int, stream: int, index: int, size: tuple[int, int]) -> Tensor:
    """Frame 0 of synthetic video ``index`` of a stream, at ``size``. Shape: ``(1, 3, H, W)``."""
    cfg = SceneConfig(height=int(size[0]), width=int(size[1]))
    frame = make_video(scene_rng(seed, stream, index), cfg)[0]
    return torch.from_numpy(frame).permute(2, 0, 1)[None].float().div(255)


def _resize(img: Tensor, size: tuple[int, int]) -> Tensor:
    if tuple(img.shape[-2:]) != tuple(size):
        img = torch.nn.functional.interpolate(
            img, size=tuple(size), mode="bicubic", antialias=True, align_corners=False
        )
    return torch.round(img.clamp(0, 1) * 255) / 255
