"""Spec strings -> transforms: ``name``, ``name:value`` (first field), ``name:k=v,k=v``, and
``random:jpeg:75+resize:0.5`` for ``random``."""

from __future__ import annotations

import dataclasses
from typing import Any

from ..errors import InputError
from ..registry import TRANSFORMS
from .base import Transform


def _convert(text: str, ftype: str, name: str, what: str) -> Any:
    try:
        if ftype == "int":
            return int(text)
        if ftype == "float":
            return float(text)
    except ValueError:
        raise InputError(f"{what}: {name}={text!r} is not a valid {ftype}") from None
    return text


def parse_transform(spec: str) -> Transform:
    """Build a transform from a spec string.

    Accepted forms: ``"jpeg"`` (defaults), ``"jpeg:75"`` (first field), ``"noisy-upscale:noise=0.1,
    scale=0.25"`` (named fields), ``"random:jpeg:75+resize:0.5"``.

    Raises:
        StillguardError: unknown name (with close matches) or a bad value (InputError).
    """
    if not isinstance(spec, str) or not spec.strip():
        raise InputError(
            f"a transform spec must be a non-empty string like 'jpeg:75', got {spec!r}"
        )
    name, _, args = spec.strip().partition(":")
    cls = TRANSFORMS.get(name.strip())
    if not args:
        return cls()
    if getattr(cls, "takes_choices", False):
        return cls(choices=tuple(a.strip() for a in args.split("+")))
    fields = [f for f in dataclasses.fields(cls) if f.init]
    if not fields:
        raise InputError(f"transform {name!r} takes no value, got {spec!r}; write just {name!r}")
    kwargs: dict[str, Any] = {}
    for i, part in enumerate(args.split(",")):
        key, eq, text = part.partition("=")
        if not eq:
            if i >= len(fields) or kwargs:
                raise InputError(f"{spec!r}: only the first value may be unnamed; use key=value")
            key, text = fields[i].name, part
        key = key.strip()
        match = [f for f in fields if f.name == key]
        if not match:
            valid = ", ".join(f.name for f in fields)
            raise InputError(
                f"{spec!r}: transform {name!r} has no option {key!r} (options: {valid})"
            )
        kwargs[key] = _convert(text.strip(), str(match[0].type), key, spec)
    return cls(**kwargs)
