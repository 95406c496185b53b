"""Purification attacks by short name: what ``stillguard bench --attacks`` and ``verify`` accept.

An attack is a transform's exact ``real()`` purification applied to the saved protected photo
before generation; the transforms (one a file) are shared with EOT. Short names map to spec strings;
any spec string (``jpeg:60``, ``diffpure:model=DIR,t=0.2``) is accepted as well.

``noisy-upscale`` without an upscaler is a bicubic stand-in for Hoenig et al.'s diffusion upscaler
(arXiv 2406.12027) and its label says so.
"""

from __future__ import annotations

from .base import Transform
from .parse import parse_transform

ATTACKS: dict[str, str] = {
    "none": "identity",
    "jpeg95": "jpeg:95",
    "jpeg75": "jpeg:75",
    "jpeg50": "jpeg:50",
    "resize": "resize:0.5",
    "blur": "blur:1.0",
    "noise": "gaussian-noise:0.03",
    "bits": "bits:5",
    "noisy-upscale": "noisy-upscale",
    "diffpure": "diffpure",
}


def parse_attack(name: str) -> Transform:
    """A short attack name (:data:`ATTACKS`) or a transform spec -> the transform."""
    return parse_transform(ATTACKS.get(name.strip(), name.strip()))


def attack_label(name: str) -> str:
    """What a table calls the attack: the short name, with a caveat for stand-ins."""
    t = parse_attack(name)
    if t.registry_name == "noisy-upscale" and not getattr(t, "upscaler", ""):
        return f"{name.strip()} (bicubic stand-in)"
    return name.strip()
