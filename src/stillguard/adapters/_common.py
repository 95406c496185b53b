"""Helpers shared by the adapters: dtype names, model folders, safetensors checks, sidecar files.

Nothing here imports diffusers, so ``stillguard.adapters`` stays cheap to import.
"""

from __future__ import annotations

import importlib.resources
import json
import logging
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, ModelError

logger = logging.getLogger(__name__)

#: file names written beside a pipeline by ``save_pretrained``
SETTINGS_FILE = "stillguard.json"
PROMPT_FILE = "prompt_embeds.safetensors"

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}
_PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``torch.float32`` or one of ``"bf16"``, ``"float16"``, ``"float32"`` ... -> ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().replace("torch.", "")
    if key not in _DTYPES:
        raise InputError(
            f"unknown dtype {dtype!r}: use one of {', '.join(sorted(_DTYPES))} "
            "(bf16 needs a GPU or a recent CPU to be fast)"
        )
    return _DTYPES[key]


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


def pick(option: Any, settings: dict[str, Any], key: str, default: Any) -> Any:
    """Explicit option, else the folder's ``stillguard.json``, else the model's default."""
    if option is not None:
        return option
    return settings.get(key, default)


def freeze(*modules: torch.nn.Module | None) -> None:
    """Eval mode and no parameter gradients: attacks differentiate w.r.t. the input only."""
    for m in modules:
        if m is not None:
            m.eval()
            m.requires_grad_(False)


def block_output(out: Any) -> torch.Tensor:
    """The main tensor of a block's output (tuples: first item; outputs with ``.sample``)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return block_output(out[0])
    sample = getattr(out, "sample", None)
    if isinstance(sample, torch.Tensor):
        return sample
    raise TypeError(f"cannot find a tensor in block output of type {type(out).__name__}")


def check_image(x: torch.Tensor) -> None:
    """Refuse anything that is not ``(B, 3, H, W)`` floating point."""
    if (
        not isinstance(x, torch.Tensor)
        or x.ndim != 4
        or x.shape[1] != 3
        or not x.is_floating_point()
    ):
        shape = tuple(x.shape) if isinstance(x, torch.Tensor) else type(x).__name__
        raise InputError(f"expected an image batch (B, 3, H, W) float in [0, 1], got {shape}")


def embed_prompt(
    pipe: Any, src: str, prompt: str, device: torch.device, dtype: torch.dtype
) -> tuple[torch.Tensor, torch.Tensor]:
    """Embed ``prompt`` and ``""`` once with the pipeline's T5, without grad; then drop T5."""
    config = pipe.load_config(src, local_files_only=True)
    if not (config.get("text_encoder") or [None])[0]:
        raise ModelError(
            f"{src} has no text encoder to embed the prompt {prompt!r}: pass prompt_embeds=... "
            f"(and negative_prompt_embeds=...), or leave prompt empty to use the folder's "
            f"{PROMPT_FILE} if it has one"
        )
    from transformers import AutoTokenizer, T5EncoderModel

    try:
        pipe.tokenizer = AutoTokenizer.from_pretrained(
            src, subfolder="tokenizer", local_files_only=True
        )
        pipe.text_encoder = T5EncoderModel.from_pretrained(
            src, subfolder="text_encoder", dtype=dtype, use_safetensors=True, local_files_only=True
        ).to(device)
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the T5 text encoder of {src}: {err}") from err
    try:
        with torch.no_grad():
            pe, ne = pipe.encode_prompt(
                prompt,
                negative_prompt="",
                do_classifier_free_guidance=True,
                max_sequence_length=pipe.transformer.config.max_text_seq_length,
                device=device,
                dtype=dtype,
            )
    finally:
        pipe.tokenizer = pipe.text_encoder = None
    logger.info("embedded the prompt with T5 and dropped the text encoder")
    return pe, ne
