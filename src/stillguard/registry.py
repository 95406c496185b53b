"""Name -> class registries for the four plug-in kinds (adapters, methods, spaces, transforms).

Each plug-in is a class registered under a kebab-case name; its dataclass fields are its config.
Unknown names are refused with the closest registered names.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from .errors import StillguardError

T = TypeVar("T")


def close_matches(name: str, choices: list[str]) -> str:
    """A short ``did you mean ...`` hint, or the list of valid choices."""
    near = difflib.get_close_matches(name, choices, n=3, cutoff=0.5)
    if near:
        return "did you mean " + " or ".join(repr(n) for n in near) + "?"
    return "choose one of: " + ", ".join(sorted(choices))


class Registry(Generic[T]):
    """A registry of one plug-in kind.

    Example:
        >>> SPACES = Registry("space")
        >>> @SPACES.register("rgb")
        ... class Rgb: ...
    """

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, type[T]] = {}

    def register(self, name: str) -> Callable[[type[T]], type[T]]:
        if name != name.lower() or "_" in name or " " in name:
            raise ValueError(f"registry names are kebab-case, got {name!r}")

        def deco(cls: type[T]) -> type[T]:
            if name in self._items and self._items[name] is not cls:
                raise ValueError(f"{self.kind} {name!r} is already registered")
            self._items[name] = cls
            cls.registry_name = name  # type: ignore[attr-defined]
            return cls

        return deco

    def names(self) -> list[str]:
        return sorted(self._items)

    def get(self, name: str) -> type[T]:
        try:
            return self._items[name]
        except KeyError:
            raise StillguardError(
                f"unknown {self.kind} {name!r}: {close_matches(name, self.names())}"
            ) from None

    def build(self, spec: str | T, **options: Any) -> T:
        """Return ``spec`` if it is already an object, else build the registered class by name.

        Options must be fields of the plug-in's dataclass; an unknown option is an error naming
        the valid ones.
        """
        if not isinstance(spec, str):
            if options:
                raise StillguardError(f"options {sorted(options)} given with a {self.kind} object")
            return spec
        cls = self.get(spec)
        if dataclasses.is_dataclass(cls):
            valid = [f.name for f in dataclasses.fields(cls) if f.init]
            for key in options:
                if key not in valid:
                    raise StillguardError(
                        f"unknown option {key!r} for {self.kind} {spec!r}: {close_matches(key, valid)}"
                    )
        return cls(**options)

    def options(self, name: str) -> list[tuple[str, str, Any]]:
        """(field name, type, default) of a registered dataclass plug-in, for `stillguard list`."""
        cls = self.get(name)
        if not dataclasses.is_dataclass(cls):
            return []
        out = []
        for f in dataclasses.fields(cls):
            if not f.init:
                continue
            if f.default is not dataclasses.MISSING:
                default = f.default
            elif f.default_factory is not dataclasses.MISSING:  # type: ignore[misc]
                default = f.default_factory()  # type: ignore[misc]
            else:
                default = None
            out.append((f.name, str(f.type), default))
        return out

    def __contains__(self, name: object) -> bool:
        return name in self._items


ADAPTERS: Registry[Any] = Registry("target")
METHODS: Registry[Any] = Registry("method")
SPACES: Registry[Any] = Registry("space")
TRANSFORMS: Registry[Any] = Registry("transform")
