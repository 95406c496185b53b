"""Run configuration: TOML presets, strict validation, ``--set`` overrides and a config hash.

A preset is a TOML file with an optional top-level ``description`` and four sections:

.. code-block:: toml

    [protect]   # steps, eps ("8/255" or 0.031), step_size, final_step_size, schedule,
                # random_start, seed, eot (list of transform specs such as "jpeg:75"), eot_samples
    [method]    # name = "vid-freeze", then the method's own options (its dataclass fields)
    [space]     # name = "rgb" (optional: the method's default space), then the space's options
    [target]    # name = "cogvideox-i2v", model, device, dtype, [target.options]

Choices:
    * validation is strict: an unknown section or key, or a value of the wrong type, is an error
      naming the key and the closest valid keys; plug-in options are checked against the plug-in
      dataclass fields (``Registry.options``), so they are never listed twice;
    * ``eps`` is in RGB units in [0, 1] (what :func:`stillguard.protect.protect` takes) and must lie
      in ``(0, 32/255]``; ``eps`` is refused inside ``[space]`` (one place only);
    * precedence: preset < explicit CLI flags < ``--set section.key=value`` (the most specific wins);
      choosing another method (or target) than the preset's drops the preset's options for it;
    * a missing ``target.model`` means the real hub checkpoint of the target (honest default);
    * the config hash covers every field except ``description`` and ``source``.
"""

from __future__ import annotations

import hashlib
import json
import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

from .errors import InputError, StillguardError
from .registry import close_matches

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli has the same API, but is not a dependency
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]

log = logging.getLogger(__name__)

MAX_EPS = 32 / 255
DEFAULT_MODELS = {
    "cogvideox-i2v": "THUDM/CogVideoX-5b-I2V",
    "svd": "stabilityai/stable-video-diffusion-img2vid-xt",
}
_PROTECT_TYPES: dict[str, tuple[type, ...]] = {
    "steps": (int,),
    "eps": (int, float, str),
    "step_size": (int, float),
    "final_step_size": (int, float),
    "schedule": (str,),
    "random_start": (bool,),
    "seed": (int,),
    "eot": (list,),
    "eot_samples": (int,),
}
_TARGET_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "model": (str,),
    "device": (str,),
    "dtype": (str,),
    "options": (dict,),
}
_SECTIONS = ("protect", "method", "space", "target")


def _require_toml() -> Any:
    if tomllib is None:
        raise StillguardError(
            "reading TOML presets needs Python 3.11+ (tomllib) or the 'tomli' package: "
            "pip install tomli"
        )
    return tomllib


def parse_eps(value: Any) -> float:
    """``"8/255"``, ``"0.03"`` or a number -> eps in [0, 1] RGB units.

    Raises:
        InputError: unparsable, or outside ``(0, 32/255]``.
    """
    if isinstance(value, bool):
        raise InputError(f"eps must be a number or a fraction like '8/255', got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        num, slash, den = text.partition("/")
        try:
            eps = float(num) / float(den) if slash else float(text)
        except (ValueError, ZeroDivisionError):
            raise InputError(f"eps {value!r} is not a number or a fraction like '8/255'") from None
    elif isinstance(value, (int, float)):
        eps = float(value)
    else:
        raise InputError(f"eps must be a number or a fraction like '8/255', got {value!r}")
    if not math.isfinite(eps) or not 0 < eps <= MAX_EPS + 1e-12:
        raise InputError(
            f"eps={value} is outside (0, 32/255]: it is an L-infinity budget in [0, 1] units, "
            "e.g. 8/255 (about 0.031); larger values become visible"
        )
    return eps


@dataclass
class RunConfig:
    """A resolved, validated run configuration (one flat record of the four preset sections)."""

    steps: int = 100
    eps: float | None = 8 / 255
    step_size: float = 0.25
    final_step_size: float = 0.02
    schedule: str = "cosine"
    random_start: bool = True
    seed: int = 0
    eot: list[str] = field(default_factory=list)
    eot_samples: int = 1
    method_name: str = "vid-freeze"
    method_options: dict[str, Any] = field(default_factory=dict)
    space_name: str | None = None
    space_options: dict[str, Any] = field(default_factory=dict)
    target_name: str = "cogvideox-i2v"
    model: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    target_options: dict[str, Any] = field(default_factory=dict)
    description: str = ""
    source: str = ""

    def protect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`stillguard.protect.protect` (all but image/adapter)."""
        return {
            "method": self.method_name,
            "space": self.space_name,
            "eps": self.eps,
            "steps": self.steps,
            "step_size": self.step_size,
            "final_step_size": self.final_step_size,
            "schedule": self.schedule,
            "random_start": self.random_start,
            "eot": list(self.eot),
            "eot_samples": self.eot_samples,
            "seed": self.seed,
            "method_options": dict(self.method_options) or None,
            "space_options": dict(self.space_options) or None,
        }

    def adapter_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`stillguard.adapters.load_adapter` (after the name)."""
        return {
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            **self.target_options,
        }

    def to_dict(self) -> dict[str, Any]:
        """The config as preset sections (TOML-shaped, JSON-able)."""
        space = {"name": self.space_name, **self.space_options} if self.space_name else {}
        return {
            "description": self.description,
            "protect": {k: getattr(self, k) for k in _PROTECT_TYPES},
            "method": {"name": self.method_name, **self.method_options},
            "space": space,
            "target": {
                "name": self.target_name,
                "model": self.model,
                "device": self.device,
                "dtype": self.dtype,
                "options": dict(self.target_options),
            },
        }

    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of every field but ``description`` and ``source``."""
        d = self.to_dict()
        d.pop("description")
        text = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


# ----------------------------------------------------------------------------- presets
def _preset_dir() -> Path:
    return Path(str(resources.files("stillguard") / "presets"))


def list_presets() -> list[str]:
    """Names of the shipped presets (``default``, ``debug``, ...)."""
    return sorted(p.stem for p in _preset_dir().glob("*.toml"))


def read_preset(name_or_path: str | Path) -> tuple[dict[str, Any], str]:
    """Raw TOML data of a shipped preset name or a ``.toml`` file, and where it came from."""
    toml = _require_toml()
    path = Path(name_or_path)
    if not (path.suffix == ".toml" or path.is_file()):
        if str(name_or_path) not in list_presets():
            raise InputError(
                f"unknown preset {str(name_or_path)!r}: {close_matches(str(name_or_path), list_presets())} "
                "(or give the path of a .toml file)"
            )
        path = _preset_dir() / f"{name_or_path}.toml"
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as e:
        raise InputError(f"cannot read preset {path}: {e.strerror or e}; check the path") from None
    except UnicodeDecodeError:
        raise InputError(f"preset {path} is not UTF-8 text; save it as UTF-8 TOML") from None
    try:
        return toml.loads(text), str(path)
    except toml.TOMLDecodeError as e:
        raise InputError(f"preset {path} is not valid TOML: {e}") from None


def load_preset(name_or_path: str | Path = "default") -> RunConfig:
    """Load and validate a preset (shipped name or ``.toml`` path) into a :class:`RunConfig`."""
    data, source = read_preset(name_or_path)
    return validate(data, source=source)


# ----------------------------------------------------------------------------- overrides
def parse_override(text: str) -> tuple[list[str], Any]:
    """``"section.key=value"`` -> (``["section", "key"]``, value as a TOML literal, else a string)."""
    key, eq, raw = text.partition("=")
    keys = [k.strip() for k in key.split(".")]
    if not eq or len(keys) < 2 or not all(keys):
        raise InputError(f"--set {text!r}: write section.key=value, e.g. protect.steps=50")
    toml = _require_toml()
    try:
        value = toml.loads(f"v = {raw.strip()}")["v"]
    except toml.TOMLDecodeError:
        value = raw.strip()
    return keys, value


def apply_overrides(data: dict[str, Any], overrides: Iterable[str]) -> dict[str, Any]:
    """Return a copy of raw preset ``data`` with each ``section.key=value`` applied."""
    out = json.loads(json.dumps(data))
    for text in overrides:
        keys, value = parse_override(text)
        node = out
        for k in keys[:-1]:
            node = node.setdefault(k, {})
            if not isinstance(node, dict):
                raise InputError(f"--set {text!r}: {k!r} is a value, not a section")
        node[keys[-1]] = value
    return out


# ----------------------------------------------------------------------------- validation
def _check_keys(where: str, data: Mapping[str, Any], valid: Iterable[str], of: str = "") -> None:
    valid = list(valid)
    for key in data:
        if key not in valid:
            what = f"section [{key}]" if not where else f"key {where}.{key}{of}"
            raise InputError(f"unknown {what}: {close_matches(key, valid)}")


def _check_type(where: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise InputError(f"{where} must be {names}, got {value!r} ({type(value).__name__})")


def _type_ok(value: Any, annotation: str) -> bool:
    """Does ``value`` fit a dataclass field annotation string (simple types only; others pass)?"""
    for part in annotation.replace(" ", "").split("|"):
        base = part.split("[")[0].rsplit(".", 1)[-1]
        checks = {
            "None": value is None,
            "bool": isinstance(value, bool),
            "int": isinstance(value, int) and not isinstance(value, bool),
            "float": isinstance(value, (int, float)) and not isinstance(value, bool),
            "str": isinstance(value, str),
            "list": isinstance(value, list),
            "tuple": isinstance(value, list),
            "Sequence": isinstance(value, list),
            "dict": isinstance(value, dict),
        }
        if base not in checks or checks[base]:
            return True
    return False


def _plugin_options(registry: Any, kind: str, name: str, opts: dict[str, Any]) -> dict[str, Any]:
    fields = {f: (t, d) for f, t, d in registry.options(name)}
    _check_keys(kind, opts, ["name", *fields], of=f" for {kind} {name!r}")
    out = {}
    for key, value in opts.items():
        if key == "name":
            continue
        annotation = fields[key][0]
        if not _type_ok(value, annotation):
            raise InputError(f"{kind}.{key} of {kind} {name!r} must be {annotation}, got {value!r}")
        out[key] = tuple(value) if annotation.startswith("tuple") else value
    return out


def validate(data: Mapping[str, Any], *, source: str = "<config>") -> RunConfig:
    """Validate raw preset data (sections as in the module docstring) into a :class:`RunConfig`.

    Raises:
        InputError: an unknown section/key or plug-in name, or a value of the wrong type or range.
    """
    from . import plugins  # noqa: F401  (fills the registries)
    from .protect import SCHEDULES
    from .registry import ADAPTERS, METHODS, SPACES
    from .transforms import parse_transform

    _check_keys("", data, ["description", *_SECTIONS])
    for sec in _SECTIONS:
        if not isinstance(data.get(sec, {}), dict):
            raise InputError(f"[{sec}] in {source} must be a table of keys")
    cfg = RunConfig(description=str(data.get("description", "")), source=source)
    prot = data.get("protect", {})
    _check_keys("protect", prot, _PROTECT_TYPES)
    for key, value in prot.items():
        _check_type(f"protect.{key}", value, _PROTECT_TYPES[key])
        setattr(cfg, key, value)
    cfg.eps = parse_eps(cfg.eps) if cfg.eps is not None else None
    cfg.step_size, cfg.final_step_size = float(cfg.step_size), float(cfg.final_step_size)
    if cfg.steps < 1 or cfg.eot_samples < 1 or cfg.seed < 0:
        raise InputError("protect.steps and protect.eot_samples must be >= 1, protect.seed >= 0")
    if not (0 < cfg.step_size <= 1 and 0 < cfg.final_step_size <= 1):
        raise InputError("protect.step_size and final_step_size are fractions of eps, in (0, 1]")
    if cfg.schedule not in SCHEDULES:
        raise InputError(
            f"protect.schedule {cfg.schedule!r}: {close_matches(cfg.schedule, list(SCHEDULES))}"
        )
    for spec in cfg.eot:
        parse_transform(spec)  # raises on unknown names/options
    cfg.eot = list(cfg.eot)

    method = dict(data.get("method", {}))
    cfg.method_name = str(method.get("name", cfg.method_name))
    METHODS.get(cfg.method_name)
    cfg.method_options = _plugin_options(METHODS, "method", cfg.method_name, method)

    space = dict(data.get("space", {}))
    if space:
        if "eps" in space:
            raise InputError("set eps in [protect] (space.eps is ignored there); remove space.eps")
        if "name" not in space:
            raise InputError('[space] needs a name, e.g. name = "rgb"')
        cfg.space_name = str(space["name"])
        SPACES.get(cfg.space_name)
        cfg.space_options = _plugin_options(SPACES, "space", cfg.space_name, space)

    target = dict(data.get("target", {}))
    _check_keys("target", target, _TARGET_TYPES)
    for key, value in target.items():
        _check_type(f"target.{key}", value, _TARGET_TYPES[key])
    cfg.target_name = target.get("name", cfg.target_name)
    ADAPTERS.get(cfg.target_name)
    cfg.model = target.get("model") or default_model(cfg.target_name)
    cfg.device = target.get("device", cfg.device)
    cfg.dtype = target.get("dtype", cfg.dtype)
    _check_device(cfg.device, cfg.dtype)
    cfg.target_options = dict(target.get("options", {}))
    return cfg


def _check_device(device: str, dtype: str) -> None:
    import torch

    from .adapters._common import resolve_dtype

    resolve_dtype(dtype)  # raises with the valid names
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


def default_model(target: str) -> str:
    """The real checkpoint a target uses by default (a hub id)."""
    from .registry import ADAPTERS

    found = getattr(ADAPTERS.get(target), "default_model", None) or DEFAULT_MODELS.get(target)
    if not found:
        raise InputError(f"target {target!r} has no default model; pass --model ID_OR_FOLDER")
    return str(found)


def build_config(
    preset: str | Path | None = "default",
    *,
    sets: Iterable[str] = (),
    method: str | None = None,
    target: str | None = None,
    model: str | None = None,
    eps: str | float | None = None,
    steps: int | None = None,
    seed: int | None = None,
    device: str | None = None,
    dtype: str | None = None,
) -> RunConfig:
    """Preset, then explicit flags, then ``--set`` overrides -> a validated :class:`RunConfig`."""
    data, source = read_preset(preset or "default")
    data = json.loads(json.dumps(data))
    for sec in _SECTIONS:
        data.setdefault(sec, {})
        if not isinstance(data[sec], dict):
            raise InputError(f"[{sec}] in {source} must be a table of keys")
    if method is not None and method != data["method"].get("name"):
        if len(data["method"]) > 1:
            log.info("method %r replaces the preset's; dropping its method options", method)
        data["method"] = {"name": method}
    if target is not None and target != data["target"].get("name"):
        keep = {k: v for k, v in data["target"].items() if k in ("device", "dtype")}
        if data["target"].get("model") in ("tiny", "toy"):
            keep["model"] = data["target"]["model"]
        data["target"] = {**keep, "name": target}
    flags = {
        ("target", "model"): model,
        ("protect", "eps"): eps,
        ("protect", "steps"): steps,
        ("protect", "seed"): seed,
        ("target", "device"): device,
        ("target", "dtype"): dtype,
    }
    for (sec, key), value in flags.items():
        if value is not None:
            data[sec][key] = value
    data = apply_overrides(data, sets)
    return validate(data, source=source)


__all__ = [
    "RunConfig",
    "build_config",
    "default_model",
    "list_presets",
    "load_preset",
    "parse_eps",
    "parse_override",
    "read_preset",
    "validate",
]
