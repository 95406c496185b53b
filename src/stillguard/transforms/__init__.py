"""Robustness transforms (one plug-in a file): differentiable versions for EOT, exact versions for evaluation.

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
  which is not available offline; ``upscaler=DIR`` uses a local latent-diffusion super-resolution
  folder instead, as a purification only). ``real`` draws its noise from a fixed seed (``REAL_SEED``).
* ``random`` applies one of its ``choices`` to each sample; ``real`` draws with ``REAL_SEED``.
* ``gaussian-noise`` adds Gaussian noise (``real``: ``REAL_SEED``); ``bits`` reduces the bit depth
  (straight-through gradient); ``diffpure`` noises to ``t`` and denoises with a local DDPM folder.

Purification attacks by short name (``none``, ``jpeg75``, ``resize``, ``diffpure``, ...):
:mod:`.attacks`.

Spec strings (:func:`parse_transform`): ``name``, ``name:value`` (first field), ``name:k=v,k=v``, and
``random:jpeg:75+resize:0.5`` for ``random``.
"""

from __future__ import annotations

from . import (  # noqa: F401  (registers them)
    bits,
    blur,
    crop,
    diffpure,
    identity,
    jpeg,
    noise,
    noisy_upscale,
    random,
    resize,
)
from .attacks import ATTACKS, attack_label, parse_attack
from .base import DEFAULT_PURIFICATIONS, REAL_SEED, Transform
from .bits import Bits
from .blur import Blur
from .crop import Crop
from .diffpure import DiffPure
from .identity import Identity
from .jpeg import Jpeg
from .noise import GaussianNoise
from .noisy_upscale import NoisyUpscale
from .parse import parse_transform
from .random import Random
from .resize import Resize

__all__ = [
    "ATTACKS",
    "DEFAULT_PURIFICATIONS",
    "REAL_SEED",
    "Bits",
    "Blur",
    "Crop",
    "DiffPure",
    "GaussianNoise",
    "Identity",
    "Jpeg",
    "NoisyUpscale",
    "Random",
    "Resize",
    "Transform",
    "attack_label",
    "parse_attack",
    "parse_transform",
]
