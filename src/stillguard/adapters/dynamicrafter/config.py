"""Configuration folders of the DynamiCrafter adapter (no weights).

A folder holds ``model_index.json``, one ``<component>/config.json`` per part of the official
``LatentVisualDiffusion`` (``unet``, ``vae``, ``clip``, ``resampler``, ``schedule``: the official
YAML ``params`` names, plus ``"_source"``), ``stillguard.json`` (generation defaults) and, once
saved with weights, ``model.safetensors`` (official keys) and ``prompt_embeds.safetensors``.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from ...errors import ModelError

COMPONENTS = ("unet", "vae", "clip", "resampler", "schedule")
WEIGHTS_FILE = "model.safetensors"


def read_config(folder: Path) -> dict[str, Any]:
    """The component configs of ``folder`` (``"_source"`` keys dropped).

    Raises:
        ModelError: a component config is missing or unreadable.
    """
    out: dict[str, Any] = {}
    for name in COMPONENTS:
        file = folder / name / "config.json"
        try:
            data = json.loads(file.read_text())
        except (OSError, ValueError) as err:
            raise ModelError(
                f"{folder} is not a DynamiCrafter folder: cannot read {name}/config.json ({err}); "
                "pass a folder written by save_pretrained or a shipped configuration"
            ) from err
        out[name] = {k: v for k, v in data.items() if not k.startswith("_")}
    return out


def write_config(folder: Path, config: dict[str, Any]) -> None:
    """Write ``model_index.json`` and the component configs into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    index = {
        "_class_name": "DynamiCrafter",
        "_stillguard": "own implementation, see adapters/dynamicrafter",
    }
    index.update({name: ["stillguard", name] for name in COMPONENTS})
    (folder / "model_index.json").write_text(json.dumps(index, indent=2) + "\n")
    for name in COMPONENTS:
        (folder / name).mkdir(exist_ok=True)
        text = json.dumps(config[name], indent=2, sort_keys=True) + "\n"
        (folder / name / "config.json").write_text(text)
