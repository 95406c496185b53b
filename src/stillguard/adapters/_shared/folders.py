"""Model folders and the files beside a pipeline: the shipped toys, safetensors-only checks, the
``stillguard.json`` settings and ``prompt_embeds.safetensors`` sidecars, one clear load error.

Nothing here imports diffusers, so ``stillguard.adapters`` stays cheap to import.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ...errors import ModelError

logger = logging.getLogger(__name__)

#: file names written beside a pipeline by ``save_pretrained``
SETTINGS_FILE = "stillguard.json"
PROMPT_FILE = "prompt_embeds.safetensors"

_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def toy_folder(name: str = "toy") -> Path:
    """The folder of a shipped toy model inside the installed package: ``"toy"`` (CogVideoX
    family, ``weights/``) or ``"toy-wan"`` (Wan family, ``weights_wan/``)."""
    sub = TOY_MODELS.get(name, "weights")
    return Path(str(importlib.resources.files("stillguard.toy") / sub))


#: names of the shipped toy models -> their folder inside ``stillguard.toy``
TOY_MODELS = {"toy": "weights", "toy-wan": "weights_wan"}


def resolve_model(model: str) -> tuple[str, Path | None]:
    """Return ``(model_id, local_folder_or_None)``; ``"toy"`` and ``"toy-wan"`` map to the
    shipped weights.

    Raises:
        ModelError: a toy asked for but not installed, or a local folder without usable weights.
    """
    if model in TOY_MODELS:
        folder = toy_folder() if model == "toy" else toy_folder(model)
        if not (folder / "model_index.json").is_file():
            raise ModelError(
                f"the shipped toy model {model!r} is not installed (no model_index.json in "
                f"{folder}): reinstall stillguard, or train it with the toy training script, "
                "or use model='tiny' for a random test model"
            )
        return model, folder
    path = Path(model).expanduser()
    if path.exists():
        check_local_folder(path)
        return str(model), path
    if model.startswith((".", "/", "~")) or model.count("/") != 1:
        raise ModelError(
            f"model {model!r} is neither an existing folder nor a hub id of the form 'owner/name': "
            "check the path, or pass a hub id such as 'THUDM/CogVideoX-5b-I2V'"
        )
    return str(model), None


def check_local_folder(path: Path) -> None:
    """Refuse folders that hold no weights, or weights only in pickle formats.

    Raises:
        ModelError: with what was found and how to fix it.
    """
    if not path.is_dir():
        raise ModelError(
            f"{path} is a file, not a pipeline folder: pass the folder that holds model_index.json"
        )
    if not (path / "model_index.json").is_file():
        raise ModelError(
            f"{path} has no model_index.json, so it is not a diffusers pipeline folder: "
            "pass the folder written by save_pretrained (or a downloaded hub snapshot)"
        )
    files = [p for p in path.rglob("*") if p.is_file()]
    safe = [p for p in files if p.suffix == ".safetensors" and p.name != PROMPT_FILE]
    pickles = [p for p in files if p.suffix in _PICKLE_SUFFIXES]
    if not safe and pickles:
        raise ModelError(
            f"{path} holds weights only in pickle formats ({pickles[0].name}, ...); stillguard loads "
            "safetensors only, because pickles can run code: convert them (load, then "
            "save_pretrained(..., safe_serialization=True)) in an environment you trust"
        )
    if not safe:
        raise ModelError(
            f"{path} holds no .safetensors weights: the download is incomplete or the folder is "
            "wrong (a config-only folder builds random weights with Adapter.from_config)"
        )


def load_error(model: str, folder: Path | None, err: Exception, what: str) -> ModelError:
    """One clear :class:`ModelError` for a failed ``from_pretrained`` (always ``local_files_only``).

    A hub id that is not in the local Hugging Face cache says how to download it: stillguard never
    downloads while loading a model.
    """
    if folder is None:
        try:
            from huggingface_hub.errors import LocalEntryNotFoundError
        except ImportError:  # pragma: no cover - very old huggingface_hub
            LocalEntryNotFoundError = OSError  # noqa: N806
        if isinstance(err, (LocalEntryNotFoundError, FileNotFoundError)):
            return ModelError(
                f"{what} weights {model!r} are not on this machine (stillguard never downloads "
                f"while loading); download them with `hf download {model}` (huggingface_hub) "
                "then pass the folder"
            )
    return ModelError(f"cannot load {what} from {model!r}: {err}")


def read_settings(folder: Path | None) -> dict[str, Any]:
    """Generation defaults from ``stillguard.json`` beside the pipeline (empty if absent)."""
    if folder is None or not (folder / SETTINGS_FILE).is_file():
        return {}
    try:
        data = json.loads((folder / SETTINGS_FILE).read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {folder / SETTINGS_FILE}: {err}; fix or delete it") from err
    if not isinstance(data, dict):
        raise ModelError(f"{folder / SETTINGS_FILE} must hold a JSON object of defaults")
    return data


def write_settings(folder: Path, settings: dict[str, Any]) -> None:
    (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2, sort_keys=True) + "\n")


def load_tensors(file: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(file))


def save_tensors(file: Path, tensors: dict[str, torch.Tensor]) -> None:
    from safetensors.torch import save_file

    save_file({k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}, str(file))
