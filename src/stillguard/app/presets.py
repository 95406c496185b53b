"""Preset files and ``--set`` overrides: TOML in, raw sections out (validated by :mod:`.config`).

A preset is a TOML file with an optional top-level ``description`` and four sections:

.. code-block:: toml

    [protect]   # the loop settings (stillguard.LoopConfig): steps, eps ("8/255" or 0.031),
                # step_size, final_step_size, schedule, random_start, seed, eot, eot_samples
    [method]    # name = "vid-freeze", then the method's own options (its dataclass fields)
    [space]     # name = "rgb" (optional: the method's default space), then the space's options
    [target]    # name = "cogvideox-i2v", model, device, dtype, [target.options]
"""

from __future__ import annotations

import json
from collections.abc import Iterable
from importlib import resources
from pathlib import Path
from typing import Any

from ..errors import InputError, StillguardError
from ..registry import close_matches

try:
    import tomllib
except ModuleNotFoundError:  # Python 3.10: tomli has the same API, but is not a dependency
    try:
        import tomli as tomllib  # type: ignore[no-redef]
    except ModuleNotFoundError:
        tomllib = None  # type: ignore[assignment]


def _require_toml() -> Any:
    if tomllib is None:
        raise StillguardError(
            "reading TOML presets needs Python 3.11+ (tomllib) or the 'tomli' package: "
            "pip install tomli"
        )
    return tomllib


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
        shipped = path.parent == _preset_dir()  # named, not by its install path (no machine paths)
        return toml.loads(text), f"preset {path.stem!r}" if shipped else str(path)
    except toml.TOMLDecodeError as e:
        raise InputError(f"preset {path} is not valid TOML: {e}") from None


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
