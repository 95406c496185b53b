"""The result of an evaluation: rows, summary, verdicts, videos, as data (and its JSON/text forms)."""

from __future__ import annotations

import json
import math
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from torch import Tensor


@dataclass
class Report:
    """What :func:`evaluate` measured.

    Attributes:
        rows: one dict per (transform, seed, subject), subject ``"protected"`` or ``"noise"``.
        summary: one dict per (transform, subject): means over seeds, ``<key>_std`` (population std)
            and ``verdict``.
        verdicts: transform label -> verdict of the protected image.
        videos: clean/protected/noise videos of the first transform (identity by default) and first
            seed, each ``(1, F, 3, H, W)``, for the visual report (not serialised).
        images: the 8-bit ``original``, ``protected`` and ``noise`` images ``(1, 3, H, W)``.
        imperceptibility: ``"protected"`` and ``"noise"`` -> :func:`stillguard.measure.metrics.imperceptibility`.
        config: target description, seeds, transforms, eps, thresholds, versions.
    """

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    verdicts: dict[str, str]
    videos: dict[str, Tensor] = field(default_factory=dict, repr=False)
    images: dict[str, Tensor] = field(default_factory=dict, repr=False)
    imperceptibility: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able content (non-finite numbers become ``None``: JSON has no inf/nan)."""
        keys = ("rows", "summary", "verdicts", "imperceptibility", "config")
        return _jsonable({k: getattr(self, k) for k in keys})

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self) -> str:
        """Human-readable summary: imperceptibility, one line per transform and subject, thresholds."""
        from .table import text_table

        return text_table(self)

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``report.json`` and ``table.txt`` into ``out_dir``; return the JSON path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.txt").write_text(self.table() + "\n")
        path = out / "report.json"
        path.write_text(self.to_json() + "\n")
        return path


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)
