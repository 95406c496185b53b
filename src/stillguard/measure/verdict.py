"""Verdicts: frozen, degraded or not protected, from the measured ratios.

Verdict thresholds (our choice; the papers publish none), applied to the means over seeds:

* **frozen**: ``motion_ratio <= 0.25`` and ``dissim_ratio <= 0.25`` (the protected video keeps at
  most a quarter of the clean video's motion and frame-to-frame change);
* **degraded**: otherwise, if ``video_ssim <= 0.5`` (SSIM of the protected video to the clean one)
  or ``fidelity_drop >= 0.5`` (frame 0 lost half of its SSIM to the photo);
* **not protected**: otherwise.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import numpy as np

FROZEN_MOTION_RATIO = 0.25
FROZEN_DISSIM_RATIO = 0.25
DEGRADED_VIDEO_SSIM = 0.5
DEGRADED_FIDELITY_DROP = 0.5
THRESHOLDS = {
    "frozen": f"motion_ratio <= {FROZEN_MOTION_RATIO} and dissim_ratio <= {FROZEN_DISSIM_RATIO}",
    "degraded": f"video_ssim <= {DEGRADED_VIDEO_SSIM} or fidelity_drop >= {DEGRADED_FIDELITY_DROP}",
    "not protected": "otherwise",
}
VERDICTS = ("frozen", "degraded", "not protected")


def verdict(row: dict[str, Any]) -> str:
    """``"frozen"``, ``"degraded"`` or ``"not protected"`` for a summary (or single) row.

    See the module docstring (and :data:`THRESHOLDS`) for the rule; ``nan``/missing values never
    satisfy a threshold.
    """

    def ok(key: str, test: Callable[[float], bool]) -> bool:
        v = row.get(key)
        return v is not None and not math.isnan(float(v)) and test(float(v))

    if ok("motion_ratio", lambda v: v <= FROZEN_MOTION_RATIO) and ok(
        "dissim_ratio", lambda v: v <= FROZEN_DISSIM_RATIO
    ):
        return "frozen"
    if ok("video_ssim", lambda v: v <= DEGRADED_VIDEO_SSIM) or ok(
        "fidelity_drop", lambda v: v >= DEGRADED_FIDELITY_DROP
    ):
        return "degraded"
    return "not protected"


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group rows by (transform, subject), in first-seen order: mean and std over seeds + verdict."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["transform"], r["subject"]), []).append(r)
    out = []
    for (transform, subject), rs in groups.items():
        s: dict[str, Any] = {"transform": transform, "subject": subject, "seeds": len(rs)}
        for k in rs[0]:
            if k in ("transform", "subject", "seed"):
                continue
            vals = np.array([r[k] for r in rs], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                s[k] = float(vals.mean())
                s[k + "_std"] = float(vals.std()) if np.isfinite(vals).all() else math.nan
        s["verdict"] = verdict(s)
        out.append(s)
    return out
