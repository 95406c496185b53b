"""stillguard: protect photos against image-to-video diffusion models, and prove it.

The flat public API is imported lazily so ``import stillguard`` stays fast and a CLI error path does
not pay for torch/diffusers imports it does not need.
"""

from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.1.0"

_LAZY = {
    "protect": ("stillguard.protect", "protect"),
    "Protected": ("stillguard.protect", "Protected"),
    "evaluate": ("stillguard.evaluate", "evaluate"),
    "Report": ("stillguard.evaluate", "Report"),
    "load_adapter": ("stillguard.adapters", "load_adapter"),
    "ADAPTERS": ("stillguard.plugins", "ADAPTERS"),
    "METHODS": ("stillguard.plugins", "METHODS"),
    "SPACES": ("stillguard.plugins", "SPACES"),
    "TRANSFORMS": ("stillguard.plugins", "TRANSFORMS"),
    "StillguardError": ("stillguard.errors", "StillguardError"),
}

__all__ = sorted(_LAZY) + ["__version__"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        module, attr = _LAZY[name]
        return getattr(importlib.import_module(module), attr)
    raise AttributeError(f"module 'stillguard' has no attribute {name!r}")
