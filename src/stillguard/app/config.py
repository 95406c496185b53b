"""Run configuration: a preset, explicit flags and ``--set`` overrides -> one validated record.

Choices:
    * validation is strict: an unknown section or key, or a value of the wrong type, is an error
      naming the key and the closest valid keys; plug-in options are checked against the plug-in
      dataclass fields (``Registry.options``), so they are never listed twice;
    * the ``[protect]`` section is the loop's :class:`~stillguard.settings.LoopConfig`, validated by
      that class (the one place that checks ``eps``, ``steps``, ``seed``, ...); the method's fixed
      settings (``noise``: zero steps) are applied and checked here too, before any model loads;
    * precedence: preset < explicit CLI flags < ``--set section.key=value`` (the most specific wins);
      choosing another method (or target) than the preset's drops the preset's options for it;
    * a missing ``target.model`` means the real hub checkpoint of the target (honest default);
    * the config hash covers every field except ``description`` and ``source``;
    * ``description`` is the preset's prose (shown by ``stillguard list``); what a sidecar records
      is :meth:`RunConfig.summary`, generated from the resolved values, so it describes the run
      that happened (``--method noise --eps 4/255`` says so, whatever the preset's text).
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import logging
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..bounds import check
from ..errors import InputError
from ..registry import close_matches
from ..settings import LoopConfig
from .models import check_device, check_settings, default_model, target_options
from .presets import apply_overrides, read_preset
from .schema import check_keys as _check_keys
from .schema import check_type as _check_type
from .schema import plugin_options as _plugin_options
from .schema import type_ok as _type_ok

log = logging.getLogger(__name__)

_LOOP_KEYS = tuple(f.name for f in dataclasses.fields(LoopConfig))
_TARGET_TYPES: dict[str, tuple[type, ...]] = {
    "name": (str,),
    "model": (str,),
    "device": (str,),
    "dtype": (str,),
    "options": (dict,),
    "weights": (list,),
    "offload": (bool,),
    "rungs": (list,),
}
_SECTIONS = ("protect", "method", "space", "target")


@dataclass
class RunConfig:
    """A resolved, validated run: the loop settings, the method, the space and the target."""

    loop: LoopConfig = field(default_factory=lambda: LoopConfig(eps=8 / 255))
    method_name: str = "vid-freeze"
    method_options: dict[str, Any] = field(default_factory=dict)
    space_name: str | None = None
    space_options: dict[str, Any] = field(default_factory=dict)
    target_name: str = "cogvideox-i2v"
    model: str = ""
    device: str = "cpu"
    dtype: str = "float32"
    target_options: dict[str, Any] = field(default_factory=dict)
    target_weights: list[float] = field(default_factory=list)
    offload: bool = False
    #: memory-ladder rungs chosen for a GPU (``--gpu-memory``, :mod:`stillguard.app.fit`)
    rungs: list[str] = field(default_factory=list)
    description: str = ""
    source: str = ""

    def protect_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`stillguard.protect` (all but image and adapter)."""
        out = {
            "method": self.method_name,
            "config": self.loop,
            "space": self.space_name,
            "method_options": dict(self.method_options) or None,
            "space_options": dict(self.space_options) or None,
        }
        if len(self.targets()) > 1:
            out.update(weights=list(self.target_weights) or None, offload=self.offload)
        return out

    def targets(self) -> list[tuple[str, str]]:
        """``(target name, model)`` of every target: one, or several for an ensemble
        (``name = "cogvideox-i2v,wan-i2v"``, ``model = "A,B"``)."""
        names = [n.strip() for n in self.target_name.split(",")]
        models = [m.strip() for m in self.model.split(",")]
        return list(zip(names, models, strict=True))

    def adapter_kwargs(self) -> dict[str, Any]:
        """Keyword arguments for :func:`stillguard.adapters.load_adapter` (after the name)."""
        return {
            "model": self.model,
            "device": self.device,
            "dtype": self.dtype,
            **self.target_options,
        }

    def summary(self, real_model: bool | None = None) -> str:
        """What this run does, generated from the resolved values (never the preset's prose).

        ``real_model``: what the loaded adapter says (default: any model but tiny/toy).
        """
        eps = self.loop.eps
        budget = f"{eps * 255:g}/255" if eps is not None else "the space's default"
        space = f" in {self.space_name}" if self.space_name else ""
        real = self.model not in ("tiny", "toy", "toy-wan") if real_model is None else real_model
        caveat = "" if real else " (a demo model: this does NOT protect against real I2V models)"
        return (
            f"{self.method_name}, {budget} budget{space}, {self.loop.steps} PGD steps, seed "
            f"{self.loop.seed}, against {self.target_name} {self.model}{caveat}"
        )

    def to_dict(self) -> dict[str, Any]:
        """The config as preset sections (TOML-shaped, JSON-able); ``description`` is :meth:`summary`."""
        space = {"name": self.space_name, **self.space_options} if self.space_name else {}
        return {
            "description": self.summary(),
            "protect": self.loop.to_dict(),
            "method": {"name": self.method_name, **self.method_options},
            "space": space,
            "target": {
                "name": self.target_name,
                "model": self.model,
                "device": self.device,
                "dtype": self.dtype,
                "options": dict(self.target_options),
                "weights": list(self.target_weights),
                "offload": self.offload,
                "rungs": list(self.rungs),
            },
        }

    def hash(self) -> str:
        """SHA-256 (hex) of the canonical JSON of every field but ``description`` and ``source``."""
        d = self.to_dict()
        d.pop("description")
        text = json.dumps(d, sort_keys=True, separators=(",", ":"), default=str)
        return hashlib.sha256(text.encode()).hexdigest()


def load_preset(name_or_path: str | Path = "default") -> RunConfig:
    """Load and validate a preset (shipped name or ``.toml`` path) into a :class:`RunConfig`."""
    data, source = read_preset(name_or_path)
    return validate(data, source=source)


def validate(data: Mapping[str, Any], *, source: str = "<config>") -> RunConfig:
    """Validate raw preset data (sections as in :mod:`.presets`) into a :class:`RunConfig`.

    Raises:
        InputError: an unknown section/key or plug-in name, or a value of the wrong type or range.
    """
    from .. import plugins  # noqa: F401  (fills the registries)
    from ..loop import resolve_loop
    from ..registry import ADAPTERS, METHODS, SPACES

    _check_keys("", data, ["description", *_SECTIONS])
    for sec in _SECTIONS:
        if not isinstance(data.get(sec, {}), dict):
            raise InputError(f"[{sec}] in {source} must be a table of keys")
    cfg = RunConfig(description=str(data.get("description", "")), source=source)
    prot = dict(data.get("protect", {}))
    _check_keys("protect", prot, _LOOP_KEYS)
    prot.setdefault("eps", 8 / 255)
    try:
        cfg.loop = LoopConfig(**prot)
    except InputError as e:
        raise InputError(f"[protect] in {source}: {e}") from None

    method = dict(data.get("method", {}))
    cfg.method_name = str(method.get("name", cfg.method_name))
    METHODS.get(cfg.method_name)
    cfg.method_options = _plugin_options(METHODS, "method", cfg.method_name, method)
    cfg.loop = resolve_loop(METHODS.build(cfg.method_name, **cfg.method_options), cfg.loop)

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
    names = [n.strip() for n in cfg.target_name.split(",")]
    for name in names:
        ADAPTERS.get(name)
    given = target.get("model")
    models = [m.strip() for m in given.split(",")] if given else [default_model(n) for n in names]
    if len(models) == 1 and len(names) > 1 and models[0] == "tiny":
        models = models * len(names)  # every target's own tiny test model
    if len(models) != len(names):
        raise InputError(
            f"{len(names)} targets ({cfg.target_name}) but {len(models)} models ({given}): give "
            "one model per target, separated by commas, e.g. --model FOLDER_A,FOLDER_B"
        )
    cfg.target_name, cfg.model = ",".join(names), ",".join(models)
    cfg.target_weights = [float(check("target_weight", w, "target.weights")) for w in target.get("weights", [])]  # fmt: skip
    if cfg.target_weights and len(cfg.target_weights) != len(names):
        raise InputError(
            f"target.weights must be {len(names)} positive numbers, one per target; got "
            f"{cfg.target_weights}"
        )
    cfg.offload = bool(target.get("offload", False))
    cfg.rungs = [str(r) for r in target.get("rungs", [])]
    cfg.device = target.get("device", cfg.device)
    cfg.dtype = target.get("dtype", cfg.dtype)
    check_device(cfg.device, cfg.dtype)
    opts = dict(target.get("options", {}))
    for name in names:  # an ensemble's options go to every member's loader
        _target_options(name, opts)
    cfg.target_options = opts
    return cfg


def _target_options(target: str, opts: dict[str, Any]) -> dict[str, Any]:
    """Names against the target loader's keywords, types against their annotations, then bounds."""
    named, any_name = target_options(target)
    for key, value in opts.items():
        if key not in named and not any_name:
            raise InputError(
                f"unknown option target.options.{key} for target {target!r}: "
                f"{close_matches(key, list(named))}"
            )
        if key in named and not _type_ok(value, named[key]):
            raise InputError(f"target.options.{key} must be {named[key]}, got {value!r}")
    check_settings(opts, "target.options")
    return opts


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
        if data["target"].get("model") in ("tiny", "toy", "toy-wan"):
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
    given = sets or any(v is not None for v in flags.values())
    return validate(data, source=f"{source} with the command line's values" if given else source)


__all__ = [
    "RunConfig",
    "build_config",
    "default_model",
    "load_preset",
    "validate",
]
