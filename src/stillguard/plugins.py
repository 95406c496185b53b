"""Import every plug-in module so the registries are filled, and re-export the registries."""

from __future__ import annotations

import importlib

from .registry import ADAPTERS, METHODS, SPACES, TRANSFORMS

_MODULES = (
    "stillguard.adapters",
    "stillguard.spaces",
    "stillguard.transforms",
    "stillguard.methods",
)

for _m in _MODULES:
    importlib.import_module(_m)

__all__ = ["ADAPTERS", "METHODS", "SPACES", "TRANSFORMS"]
