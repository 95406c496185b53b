"""The bench's table: one row per target x method x attack, aggregated over photos and seeds.

Every number is the mean over the (photo, seed) cases of that row (``n`` of them); ratios are means
of per-case ratios. Columns (``COLUMNS``; a learned metric's column appears only when its folder was
given, the face columns only when dlib is installed):

* ``motion``: motion ratio (Farneback flow of the protected video / the clean video, same seed);
* ``tssim``: temporal-dissimilarity ratio (1 - SSIM of consecutive frames, protected / clean:
  Vid-Freeze's temporal SSIM read as a ratio; < 1 = the video changes less);
* ``vssim``: SSIM of the protected video to the clean video, frame by frame;
* ``ism``: ISM (dlib ResNet), the match rate: share of frames whose face is within dlib's 0.6 of the
  photo's face (a frame without a face does not match), with the mean distance and cosine;
* ``fdfr``: face detection failure rate of the protected video (clean video's in ``clean_fdfr``);
* ``dino``, ``clip``, ``qalign``, ``ism_arcface``: see :mod:`stillguard.measure.extra`;
* ``psnr``, ``ssim``, ``lpips``, ``photo_ism_dist``: the protected photo (before the attack) vs the
  original (per method and target; repeated on each attack row);
* ``success``: **protection success rate**, the share of cases where the protection worked after
  the attack: the case's verdict (:mod:`stillguard.measure.verdict` on its own numbers) is
  ``frozen`` or ``degraded``, or its face is lost (the clean video's face matches the photo in at
  least half of its frames, the protected video's in fewer than half);
* ``seconds``: protect + evaluate per photo; ``peak_mib``: peak memory (see :mod:`.cell`).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from ...measure.verdict import verdict

COLUMNS: tuple[tuple[str, str], ...] = (
    ("motion", "motion ratio"),
    ("tssim", "temporal dissim ratio"),
    ("vssim", "SSIM to clean video"),
    ("ism", "ISM (dlib ResNet) match"),
    ("ism_dist", "ISM dlib distance"),
    ("ism_cos", "ISM dlib cosine"),
    ("fdfr", "FDFR"),
    ("clean_fdfr", "FDFR clean"),
    ("ism_arcface", "ISM (ArcFace)"),
    ("dino", "DINO sim"),
    ("clip", "CLIP sim"),
    ("qalign", "Q-Align-style"),
    ("psnr", "photo PSNR dB"),
    ("ssim", "photo SSIM"),
    ("lpips", "photo LPIPS"),
    ("photo_ism_dist", "photo ISM dlib dist"),
    ("success", "success rate"),
    ("seconds", "s/photo"),
    ("peak_mib", "peak MiB"),
)
_ROW = {"motion": "motion_ratio", "tssim": "dissim_ratio", "vssim": "video_ssim",
        "ism": "ism_match", "ism_dist": "ism_dist", "ism_cos": "ism_cos", "fdfr": "fdfr",
        "clean_fdfr": "clean_fdfr", "ism_arcface": "ism_arcface", "dino": "dino", "clip": "clip",
        "qalign": "qalign"}  # fmt: skip
_PHOTO = ("psnr", "ssim", "lpips", "photo_ism_dist")


def succeeded(row: dict[str, Any]) -> bool:
    """The success rule of the module docstring, for one (photo, seed, attack) case."""
    if verdict(row) != "not protected":
        return True
    clean, prot = row.get("clean_ism_match", math.nan), row.get("ism_match", math.nan)
    return (
        bool(clean >= 0.5 and prot < 0.5) if not (math.isnan(clean) or math.isnan(prot)) else False
    )


def _mean(values: list[float]) -> float:
    a = np.array([v for v in values if v is not None], dtype=np.float64)
    a = a[np.isfinite(a)]
    return float(a.mean()) if a.size else math.nan


def aggregate(cells: list[dict[str, Any]], attacks: list[str]) -> list[dict[str, Any]]:
    """Rows of the table from the cell records (each tagged with ``target`` and ``method``)."""
    out = []
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for c in cells:
        groups.setdefault((c["target"], c["method"]), []).append(c)
    for (target, method), cs in groups.items():
        for attack in attacks:
            rows = [r for c in cs for r in c["rows"] if r["attack"] == attack]
            row: dict[str, Any] = {"target": target, "method": method, "attack": attack,
                                   "n": len(rows), "photos": len(cs)}  # fmt: skip
            for key, src in _ROW.items():
                if any(src in r for r in rows):
                    row[key] = _mean([r.get(src) for r in rows])
            for key in _PHOTO:
                if any(key in c["fidelity"] for c in cs):
                    row[key] = _mean([c["fidelity"].get(key) for c in cs])
            row["success"] = _mean([float(succeeded(r)) for r in rows])
            row["too_small"] = bool(rows) and all(r.get("too_small", 0) >= 1 for r in rows)
            row["seconds"] = _mean([c["seconds"] for c in cs])
            row["peak_mib"] = max(c["peak_mib"] for c in cs)
            out.append(row)
    return out


def columns(rows: list[dict[str, Any]]) -> list[tuple[str, str]]:
    """The columns some row has a value for (learned/face columns appear only when measured)."""
    return [(k, h) for k, h in COLUMNS if any(k in r for r in rows)]


def fmt(row: dict[str, Any], key: str) -> str:
    v = row.get(key)
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if key in ("fdfr", "ism") and row.get("too_small"):
        return f"{v:.2f}*"
    digits = {"psnr": 2, "seconds": 1, "peak_mib": 0}.get(key, 3)
    return f"{v:.{digits}f}"


def markdown(rows: list[dict[str, Any]]) -> str:
    cols = columns(rows)
    head = ["target", "method", "attack", "n"] + [h for _, h in cols]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        cells = [r["target"], r["method"], r["attack"], str(r["n"])] + [fmt(r, k) for k, _ in cols]
        lines.append("| " + " | ".join(cells) + " |")
    if any(r.get("too_small") for r in rows):
        lines.append("")
        lines.append("\\* frames too small for the face detector: every frame counts as a "
                     "detection failure (FDFR 1) and no face can match.")  # fmt: skip
    return "\n".join(lines)
