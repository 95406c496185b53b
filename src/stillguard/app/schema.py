"""Strict checks of preset sections: unknown keys (with close matches), value types, plug-in options."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from ..bounds import check
from ..errors import InputError
from ..registry import close_matches


def check_keys(where: str, data: Mapping[str, Any], valid: Iterable[str], of: str = "") -> None:
    valid = list(valid)
    for key in data:
        if key not in valid:
            what = f"section [{key}]" if not where else f"key {where}.{key}{of}"
            raise InputError(f"unknown {what}: {close_matches(key, valid)}")


def check_type(where: str, value: Any, types: tuple[type, ...]) -> None:
    ok = isinstance(value, types) and not (isinstance(value, bool) and bool not in types)
    if not ok:
        names = " or ".join(t.__name__ for t in types)
        raise InputError(f"{where} must be {names}, got {value!r} ({type(value).__name__})")


def type_ok(value: Any, annotation: str) -> bool:
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


def plugin_options(registry: Any, kind: str, name: str, opts: dict[str, Any]) -> dict[str, Any]:
    fields = {f: (t, d) for f, t, d in registry.options(name)}
    check_keys(kind, opts, ["name", *fields], of=f" for {kind} {name!r}")
    out = {}
    for key, value in opts.items():
        if key == "name":
            continue
        annotation = fields[key][0]
        if not type_ok(value, annotation):
            raise InputError(f"{kind}.{key} of {kind} {name!r} must be {annotation}, got {value!r}")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            check(key, value, f"{kind}.{key}")  # every number has a range (stillguard.bounds)
        out[key] = tuple(value) if annotation.startswith("tuple") else value
    return out
