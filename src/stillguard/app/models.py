"""Which model a run uses, whether it is on this machine, and loading it without any network call.

Every command (protect, verify, demo) goes through :func:`load_target`, so all of them check the
same way, before any work:

    * ``tiny`` and ``toy`` are built from the package (no files to check);
    * a local folder must hold ``model_index.json`` and safetensors weights (pickles are refused),
      and its ``stillguard.json`` generation settings must be sane (:data:`stillguard.bounds.BOUNDS`);
    * a hub id must be **fully** in the local hub cache: every component of its
      ``model_index.json``, every weight shard named by an index; otherwise the run stops with the
      "weights not on this machine" line; stillguard never downloads;
    * loading runs with ``HF_HUB_OFFLINE=1`` (and the hub client's own flag, which it reads only
      once at import), so nothing below (diffusers, transformers) may open a connection.

Choices: the device/dtype check refuses half precision on the CPU, rather than converting: torch
has no CPU kernel for the antialiased bicubic resize every adapter applies to the photo in its own
dtype (``NotImplementedError`` in bf16 and fp16), and the adapters are not this layer's to change.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any

from ..bounds import check_settings  # noqa: F401  (re-exported: app.config uses it)
from ..errors import InputError, ModelError

DEMO_MODELS = ("tiny", "toy", "toy-wan")


def default_model(target: str) -> str:
    """The real checkpoint a target uses by default (a hub id)."""
    from .. import plugins  # noqa: F401  (fills the registries)
    from ..registry import ADAPTERS

    found = getattr(ADAPTERS.get(target), "default_model", None)
    if not found:
        raise InputError(f"target {target!r} has no default model; pass --model ID_OR_FOLDER")
    return str(found)


def check_device(device: str, dtype: str) -> None:
    """Refuse a device that is not here, an unknown dtype, and half precision on the CPU."""
    import torch

    from ..adapters import resolve_dtype

    dt = resolve_dtype(dtype)  # raises with the valid names
    try:
        dev = torch.device(device)
    except (RuntimeError, ValueError):
        raise InputError(
            f"target.device {device!r} is not a torch device: use cpu, cuda, cuda:1 or mps"
        ) from None
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            f"device {device!r} asked for, but CUDA is not available here; use --device cpu"
        )
    if dev.type == "mps" and not torch.backends.mps.is_available():
        raise InputError(
            f"device {device!r} asked for, but MPS is not available here; use --device cpu"
        )
    if dev.type == "cpu" and dt in (torch.bfloat16, torch.float16):
        raise InputError(
            f"dtype {dtype} on the CPU is not supported: torch has no CPU kernel for the "
            "antialiased resize of the photo in half precision; use --dtype float32 on the CPU "
            "(bf16/fp16 are for GPUs: --device cuda)"
        )


def target_options(target: str) -> tuple[dict[str, str], bool]:
    """The options a target's loader takes: ``{name: annotation}``, and whether it takes any name."""
    import inspect

    from .. import plugins  # noqa: F401  (fills the registries)
    from ..registry import ADAPTERS

    params = inspect.signature(ADAPTERS.get(target).from_pretrained).parameters.values()
    named = {p.name: str(p.annotation) for p in params
             if p.kind is p.KEYWORD_ONLY and p.name not in ("device", "dtype")}  # fmt: skip
    return named, any(p.kind is p.VAR_KEYWORD for p in params)


def hub_snapshot(model: str) -> Path | None:
    """The folder of ``model`` (a hub id) in the local hub cache, or ``None``; never the network.

    A diffusers pipeline repository is found by its ``model_index.json``; a single-model repository
    (Open-Sora's STDiT3, converted DynamiCrafter weights) by its ``config.json``.
    """
    try:
        import huggingface_hub
    except ImportError:  # pragma: no cover - diffusers depends on it
        return None
    for name in ("model_index.json", "config.json"):
        try:
            cached = huggingface_hub.try_to_load_from_cache(model, name)
        except Exception:  # noqa: BLE001 - an unreadable cache: not cached
            cached = None
        if isinstance(cached, str):
            return Path(cached).parent
    return None


def missing_files(folder: Path) -> list[str]:
    """What a pipeline folder lacks: components of its ``model_index.json``, weights, shards."""
    try:
        index = json.loads((folder / "model_index.json").read_text())
    except (OSError, ValueError):
        return ["model_index.json"]
    missing: list[str] = []
    for name, spec in index.items():
        if name.startswith("_") or not isinstance(spec, list) or None in spec[:2]:
            continue
        if not _files_in_repo(str(spec[0])):
            continue  # e.g. Cosmos' guardrail: its own package brings its own models
        sub = folder / name
        if not sub.is_dir():
            missing.append(f"{name}/")
            continue
        for idx in sorted(sub.glob("*.safetensors.index.json")):
            try:
                shards = sorted(set(json.loads(idx.read_text()).get("weight_map", {}).values()))
            except (OSError, ValueError, AttributeError):
                shards = [idx.name]
            missing += [f"{name}/{s}" for s in shards if not (sub / s).is_file()]
        weights = [p for p in sub.glob("*.safetensors") if p.is_file()]
        if (sub / "config.json").is_file() and not weights:
            missing.append(f"{name}/*.safetensors")
    return missing


def _files_in_repo(library: str) -> bool:
    """Whether a component of ``library`` keeps its files in the pipeline repository: diffusers,
    transformers and diffusers' pipeline packages (LTX-2's ``ltx2`` connectors) do; a separate
    package named by ``model_index.json`` (Cosmos' ``cosmos_guardrail``) brings its own."""
    if library in ("diffusers", "transformers"):
        return True
    import importlib.util

    return (
        library.isidentifier()
        and importlib.util.find_spec(f"diffusers.pipelines.{library}") is not None
    )


def _own_format(path: Path) -> bool:
    """A safetensors file, or a folder of safetensors weights without ``model_index.json``: the
    layout of the targets stillguard implements itself (Open-Sora 1.2, converted DynamiCrafter),
    whose own loaders check it."""
    if path.is_file():
        if path.suffix != ".safetensors":
            raise ModelError(
                f"{path}: stillguard loads .safetensors weights only (pickles can run code); "
                "convert the file first (for DynamiCrafter: stillguard convert)"
            )
        return True
    return not (path / "model_index.json").is_file() and any(path.rglob("*.safetensors"))


def _not_here(model: str, missing: list[str]) -> ModelError:
    part = ""
    if missing != ["model_index.json"]:
        more = ", ..." if len(missing) > 3 else ""
        part = f" (the hub cache holds only part of them; missing {', '.join(missing[:3])}{more})"
    how = weights_hint(model) or (
        f"download them (e.g. `huggingface-cli download {model} --local-dir DIR`) and pass "
        "--model DIR"
    )
    return ModelError(
        f"the weights of {model} are not on this machine{part} and stillguard does not download "
        f"them: {how}, or pass --model toy (or tiny) for a demo that does NOT protect against "
        "real models"
    )


def weights_hint(model: str) -> str | None:
    """How to get ``model``'s weights, from the adapter whose real checkpoints include it.

    An adapter may set a class attribute ``weights_hint`` (e.g. DynamiCrafter: its official weights
    are a pickle to convert with ``stillguard convert``), where ``{model}`` stands for the hub id;
    ``None`` keeps the generic advice.
    """
    from .. import plugins  # noqa: F401  (fills the registries)
    from ..registry import ADAPTERS

    for name in ADAPTERS.names():
        cls = ADAPTERS.get(name)
        if model == cls.default_model or model in cls.real_models:
            hint = getattr(cls, "weights_hint", None)
            if hint:
                return str(hint).replace("{model}", model)
    return None


def check_model_available(model: str) -> Path | None:
    """Fail early when ``model`` cannot be loaded from this machine; return its folder.

    Returns:
        The local folder (a path, or a hub id's snapshot in the cache); ``None`` for tiny/toy.

    Raises:
        ModelError: a hub id not (fully) in the cache, a folder without safetensors weights.
        InputError: a ``stillguard.json`` with settings outside :data:`stillguard.bounds.BOUNDS`.
    """
    from ..adapters import SETTINGS_FILE, check_local_folder, read_settings

    if model in DEMO_MODELS:
        return None
    path = Path(model).expanduser()
    if path.exists():
        if not _own_format(path):
            check_local_folder(path)  # no weights, or pickles only: say so now
        folder = path if path.is_dir() else path.parent
    elif model.count("/") != 1 or model.startswith((".", "/", "~")):
        raise ModelError(
            f"model {model!r} is neither an existing folder nor a hub id of the form 'owner/name': "
            "check the path, or pass a hub id such as 'THUDM/CogVideoX-5b-I2V'"
        )
    else:
        snap = hub_snapshot(model)
        if snap is not None and _own_format(snap):
            return snap  # a single-model repository: its adapter's loader checks the rest
        missing = missing_files(snap) if snap is not None else ["model_index.json"]
        if missing:
            raise _not_here(model, missing)
        check_local_folder(snap)
        folder = snap
    check_settings(read_settings(folder), f"{folder / SETTINGS_FILE}")
    return folder


@contextlib.contextmanager
def offline() -> Iterator[None]:
    """No network inside: ``HF_HUB_OFFLINE=1`` and the hub client's flag (read once at import)."""
    old_env = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    try:
        import huggingface_hub.constants as hc
    except ImportError:  # pragma: no cover - diffusers depends on it
        hc = None
    old = getattr(hc, "HF_HUB_OFFLINE", None)
    if hc is not None:
        hc.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if hc is not None:
            hc.HF_HUB_OFFLINE = old
        if old_env is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = old_env


def load_target(
    name: str,
    model: str,
    device: str = "cpu",
    dtype: str = "float32",
    options: Mapping[str, Any] | None = None,
) -> Any:
    """Check that ``model`` is on this machine (:func:`check_model_available`), then load it offline.

    Returns:
        The adapter (:func:`stillguard.adapters.load_adapter`).
    """
    check_model_available(model)
    from ..adapters import load_adapter

    with offline():
        return load_adapter(name, model=model, device=device, dtype=dtype, **dict(options or {}))
