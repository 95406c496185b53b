"""Pipelines built from configs with random weights: the ONE builder behind every adapter's
``tiny()`` and ``from_config()``.

* :func:`seeded` draws from a seed without touching the global RNG state; :func:`random_models`
  builds a family's tiny models from its config dicts in one such seeded stream, each through
  :func:`build_model` (a diffusers or transformers class from a config, created directly on
  ``device`` and cast to ``dtype``); on ``device="meta"`` or under
  ``torch._subclasses.fake_tensor.FakeTensorMode`` nothing is allocated (no seeding either);
* :func:`build_scheduler` builds a scheduler, always with real CPU tensors (a scheduler holds no
  weights, and its set-up uses numpy, which fake tensors cannot feed);
* :func:`config_pipeline` builds a whole pipeline from a folder without weights
  (``model_index.json`` and each component's ``config.json`` / ``scheduler_config.json`` /
  ``preprocessor_config.json``, as in a hub snapshot; :func:`folder_components`) through the
  classes that ``model_index.json`` names, component ``i`` drawing from ``seed + i``.

Keys starting with ``"_"`` (``"_source"``, ``"_class_name"``, ...) are never passed to a
constructor: diffusers' ``extract_init_dict`` drops them itself, and they are stripped here for
transformers' configs. A family's own configs (its tiny sizes, the switches of the real model they
keep) live in its ``tiny.py``.
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ...errors import ModelError


def fake_or_meta(device: str | torch.device) -> bool:
    """True when nothing is allocated: ``device`` is meta, or a ``FakeTensorMode`` is active."""
    from torch._guards import detect_fake_mode

    return torch.device(device).type == "meta" or detect_fake_mode() is not None


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device = "cpu") -> Iterator[None]:
    """Draw from ``seed`` inside, leaving the global RNG (CPU, and ``device``'s if it is a GPU)
    as it was; a no-op when nothing is real."""
    if fake_or_meta(device):
        yield
        return
    device = torch.device(device)
    with torch.random.fork_rng(devices=[device] if device.type == "cuda" else []):
        torch.manual_seed(seed)
        yield


def random_models(
    seed: int, specs: dict[str, tuple[type, dict[str, Any]]], device: str | torch.device = "cpu"
) -> dict[str, torch.nn.Module]:
    """``{name: build_model(cls, config)}`` for ``specs = {name: (cls, config)}``, drawn in order
    from one stream seeded by ``seed`` (a family's tiny models), float32 on ``device``."""
    with seeded(seed, device):
        return {n: build_model(c, cfg, seed=None, device=device) for n, (c, cfg) in specs.items()}


def _public(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def build_model(
    cls: type,
    config: dict[str, Any],
    *,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """``cls`` (a diffusers model or a transformers ``PreTrainedModel``) built from ``config`` with
    random weights from ``seed``, created on ``device`` and cast to ``dtype``.

    ``seed=None`` draws from the current RNG stream (several models inside one :func:`seeded`).
    """
    seeding = seeded(seed, device) if seed is not None else contextlib.nullcontext()
    with seeding, torch.device(device):
        if hasattr(cls, "config_class") and hasattr(cls.config_class, "from_dict"):
            model = cls(cls.config_class(**_public(config)))  # transformers
        else:
            model = cls.from_config(config)  # diffusers drops "_" keys itself
    return cast(model, dtype, device)


def cast(
    model: torch.nn.Module, dtype: torch.dtype, device: str | torch.device | None = None
) -> torch.nn.Module:
    """``model``'s floating parameters and buffers in ``dtype``, except those its class keeps in
    float32 (``_keep_in_fp32_modules`` names components of a tensor's dotted name, the tensor's own
    name included, as in diffusers' ``from_pretrained``), and every tensor on ``device`` (a few
    constructors ignore the default device, e.g. diffusers' ``AlphaBlender`` builds
    ``torch.Tensor([alpha])``). Tensors are replaced rather than converted in place
    (``Module.to`` cannot swap fake tensors); shared parameters stay shared."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    device = torch.device(device) if device is not None else None
    done: dict[int, torch.Tensor] = {}
    for name, module in model.named_modules():
        for table, wrap in ((module._parameters, True), (module._buffers, False)):
            for key, t in table.items():
                if t is None:
                    continue
                path = [*name.split("."), key]  # e.g. Wan keeps blocks.0.scale_shift_table
                want = torch.float32 if any(k in path for k in keep) else dtype
                to_dtype = want if t.is_floating_point() and t.dtype != want else None
                moved = device is not None and t.device != device
                if to_dtype is None and not moved:
                    continue
                if id(t) not in done:
                    new = t.detach().to(device=device if moved else t.device, dtype=to_dtype)
                    done[id(t)] = torch.nn.Parameter(new, t.requires_grad) if wrap else new
                table[key] = done[id(t)]
    return model


def build_scheduler(cls: type, config: dict[str, Any]) -> Any:
    """A scheduler from its config, with real CPU tensors even under ``FakeTensorMode``."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    with unset_fake_temporarily(), torch.device("cpu"):
        return cls.from_config(config)


_CONFIG_FILES = (
    "config.json", "scheduler_config.json", "preprocessor_config.json", "guider_config.json",
)  # fmt: skip


def component_class(library: str, name: str) -> type:
    """The class ``model_index.json`` names, looked up in ``diffusers`` or ``transformers``, or in
    a pipeline package of diffusers (LTX-2's ``["ltx2", "LTX2TextConnectors"]`` is
    ``diffusers.pipelines.ltx2.LTX2TextConnectors``, as diffusers' own loader resolves it); an
    image processor as its torchvision-free ``...Pil`` class where transformers has one (what
    transformers falls back to anyway without torchvision, minus the warning)."""
    if library not in ("diffusers", "transformers"):
        return _pipeline_package_class(library, name)
    module = importlib.import_module(library)
    if name.endswith("ImageProcessor") and hasattr(module, name + "Pil"):
        name += "Pil"
    try:
        return getattr(module, name)
    except AttributeError as err:
        raise ModelError(f"this {library} has no {name}: upgrade {library}") from err


def _pipeline_package_class(library: str, name: str) -> type:
    """``name`` from ``diffusers.pipelines.<library>``; anything else (a separate package such as
    Cosmos' ``cosmos_guardrail``) is refused: stillguard builds only diffusers/transformers code."""
    try:
        if not library.isidentifier():
            raise ImportError(library)
        module = importlib.import_module(f"diffusers.pipelines.{library}")
        return getattr(module, name)
    except (ImportError, AttributeError):
        raise ModelError(
            f"component class {library}.{name} is not from diffusers or transformers"
        ) from None


def read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {file}: {err}") from err
    if not isinstance(data, dict):
        raise ModelError(f"{file} must hold a JSON object")
    return data


def folder_components(
    folder: str | Path,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Every component of a config-only pipeline folder, built with random weights.

    Models go through :func:`build_model` (component ``i`` draws from ``seed + i``), schedulers
    through :func:`build_scheduler`, image processors from their JSON, guiders (diffusers'
    ``ClassifierFreeGuidance``: ``guider_config.json``, no weights) with ``from_config``.
    Components listed in ``skip`` (e.g. a text encoder whose output is replaced by zero prompt
    embeddings) and entries set to ``null`` come back as ``None``; plain values are left to
    :func:`index_values`.

    Raises:
        ModelError: no ``model_index.json``, a component without its config file, or a class that
            diffusers/transformers does not have.
    """
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"{folder} has no model_index.json: pass a folder laid out like a pipeline "
            "(model_index.json, <component>/config.json); see stillguard/adapters/configs/"
        )
    index = read_json(folder / "model_index.json")
    out: dict[str, Any] = {}
    entries = [(k, v) for k, v in index.items() if not k.startswith("_")]
    for i, (name, entry) in enumerate(entries):
        if not isinstance(entry, list):
            continue  # a plain value (see index_values)
        if name in skip or entry[0] is None:
            out[name] = None
            continue
        cls = component_class(entry[0], entry[1])
        files = [folder / name / f for f in _CONFIG_FILES if (folder / name / f).is_file()]
        if not files:
            raise ModelError(f"{folder / name} has none of {', '.join(_CONFIG_FILES)}")
        config = read_json(files[0])
        if hasattr(cls, "set_timesteps"):
            out[name] = build_scheduler(cls, config)
        elif hasattr(cls, "from_dict") and not hasattr(cls, "config_class"):
            out[name] = processor_from_dict(cls, _public(config))  # an image processor
        elif not issubclass(cls, torch.nn.Module):
            out[name] = cls.from_config(config)  # a guider: settings, no weights
        else:
            out[name] = build_model(cls, config, seed=seed + i, device=device, dtype=dtype)
    return out


def processor_from_dict(cls: type, config: dict[str, Any]) -> Any:
    """An image processor from its JSON. A multimodal processor class (a transformers
    ``ProcessorMixin`` such as SkyReels-V2's ``CLIPProcessor``: image processor + tokenizer) is
    built as the image processor its JSON names (``image_processor_type``): a config-only folder
    has no tokenizer files, and the image path is all stillguard runs."""
    from transformers import ProcessorMixin

    kind = config.get("image_processor_type")
    if issubclass(cls, ProcessorMixin) and kind:
        cls = component_class("transformers", kind)
    return cls.from_dict(config)


def index_values(folder: str | Path) -> dict[str, Any]:
    """The plain values of a folder's ``model_index.json`` (``boundary_ratio``,
    ``expand_timesteps``, ...): the pipeline's arguments that are not components."""
    index = read_json(Path(folder) / "model_index.json")
    return {k: v for k, v in index.items() if not k.startswith("_") and not isinstance(v, list)}


def config_pipeline(
    folder: str | Path,
    pipeline_cls: type,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    skip: tuple[str, ...] = (),
    needed: tuple[str, ...] = (),
    what: str = "this model's",
    given: dict[str, Any] | None = None,
) -> Any:
    """``pipeline_cls`` on a config-only folder: every component of :func:`folder_components`
    (random weights from ``seed``; those in ``skip`` are ``None``), every value of
    :func:`index_values`, and the components in ``given`` as they are (e.g. a stand-in for a
    component the pipeline refuses to be without; name them in ``skip`` too).

    Raises:
        ModelError: no ``model_index.json``, a missing config, or a component of ``needed``
            missing (``what`` names the pipeline in the message).
    """
    parts = folder_components(folder, seed=seed, device=device, dtype=dtype, skip=skip)
    missing = [k for k in needed if parts.get(k) is None]
    if missing:
        raise ModelError(f"{folder} lacks {', '.join(missing)}: not {what} pipeline folder")
    return pipeline_cls(**{**parts, **(given or {})}, **index_values(folder))
