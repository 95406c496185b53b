"""Real model configurations shipped without weights, and official-architecture builders.

``config_folder(name)`` is a shipped folder under ``adapters/configs/`` (see its README);
``real_config(target, model)`` finds the folder of a target's published checkpoint;
``official_model(target, part)`` builds a module whose ``state_dict()`` matches an official weight
file key for key (for the targets whose architecture stillguard implements itself). The registry is
full whenever this module is: importing it imports the package ``stillguard.adapters`` first, which
registers every family.
"""

from __future__ import annotations

import importlib.resources
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError
from ..registry import ADAPTERS, close_matches


def configs_root() -> Path:
    """The folder holding every shipped real configuration."""
    return Path(str(importlib.resources.files("stillguard.adapters") / "configs"))


def config_names() -> list[str]:
    """Names of the shipped real configurations (folder names)."""
    return sorted(p.name for p in configs_root().iterdir() if (p / "model_index.json").is_file())


def config_folder(name: str) -> Path:
    """The shipped config-only folder ``name``.

    Raises:
        InputError: no such folder (the message lists close names).
    """
    path = configs_root() / name
    if not (path / "model_index.json").is_file():
        raise InputError(
            f"no shipped configuration {name!r}: {close_matches(name, config_names())}"
        )
    return path


def real_config(target: str, model: str | None = None) -> Path:
    """The shipped configuration of ``target``'s published checkpoint ``model`` (hub id; default:
    the target's default model)."""
    cls = ADAPTERS.get(target)
    model = model or cls.default_model
    folders: dict[str, str] = dict(getattr(cls, "real_models", {}) or {})
    if model not in folders:
        known = ", ".join(sorted(folders)) or "none"
        raise InputError(
            f"no shipped configuration for {target} model {model!r} (shipped: {known}); "
            "pass a local folder that holds the model's config files"
        )
    return config_folder(folders[model])


def official_model(target: str, part: str, device: str | torch.device = "meta") -> Any:
    """A ``torch.nn.Module`` whose ``state_dict()`` has exactly the keys and shapes of the official
    weight file ``part`` of ``target`` (e.g. ``("open-sora-1.2", "stdit3")``)."""
    return ADAPTERS.get(target).official_model(part, device=device)
