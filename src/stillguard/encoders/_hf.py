"""What the transformers-based encoders (CLIP, DINO) share: the preprocessing read from the folder.

A hub snapshot of CLIP or DINO carries ``preprocessor_config.json`` (``size.shortest_edge``,
``crop_size``, ``image_mean``, ``image_std``); those values are used, redone in torch
(:mod:`._prep`). Without the file the model's published defaults are used.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any


def preprocessing(folder: Path | None, defaults: dict[str, Any]) -> dict[str, Any]:
    """``{"resize", "crop", "mean", "std"}`` from ``preprocessor_config.json``, else ``defaults``."""
    out = dict(defaults)
    file = folder / "preprocessor_config.json" if folder is not None else None
    if file is None or not file.is_file():
        return out
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError):
        return out
    size, crop = data.get("size"), data.get("crop_size")
    if isinstance(size, dict):
        size = size.get("shortest_edge") or size.get("height")
    if isinstance(crop, dict):
        crop = crop.get("height")
    if isinstance(size, int):
        out["resize"] = size
    if isinstance(crop, int):
        out["crop"] = crop
    for key, name in (("mean", "image_mean"), ("std", "image_std")):
        if isinstance(data.get(name), list) and len(data[name]) == 3:
            out[key] = tuple(float(v) for v in data[name])
    return out


def write_preprocessing(folder: Path, prep: dict[str, Any]) -> None:
    """Write ``preprocessor_config.json`` in the layout :func:`preprocessing` reads."""
    data = {"size": {"shortest_edge": prep["resize"]}, "crop_size": {"height": prep["crop"],
            "width": prep["crop"]}, "image_mean": list(prep["mean"]), "image_std": list(prep["std"])}  # fmt: skip
    (folder / "preprocessor_config.json").write_text(json.dumps(data, indent=1) + "\n")
