"""stillguard: protect photos against image-to-video models, and prove it.

The public API is listed here explicitly (each name with the module that defines it, imported on
first use) and no public name is also the name of a submodule, so ``from stillguard import
protect`` and ``stillguard.protect(...)`` always give the function, whatever else has been
imported, in any order and any number of times::

    from stillguard import load_adapter, load_image, protect, save_protected, evaluate

Layers (``docs/architecture.md``): the core (``loop``, ``settings``, ``images``, ``files``,
``tensors``, ``spaces``, ``transforms``, ``adapters``, ``methods``) never imports ``measure``,
``app`` or the fronts; ``measure`` never imports ``app``.
"""

from __future__ import annotations

__version__ = "0.1.0"

from typing import TYPE_CHECKING, Any

#: public name -> the module that defines it (imported on first use, so that ``import stillguard``
#: and the CLI's ``--help`` do not pay for torch until something needs it)
_PUBLIC = {
    "load_adapter": "adapters",
    "save_protected": "app.outputs",
    "CapabilityError": "errors",
    "InputError": "errors",
    "ModelError": "errors",
    "StillguardError": "errors",
    "LoadedImage": "images",
    "load_image": "images",
    "ProgressEvent": "loop",
    "Protected": "loop",
    "protect": "loop",
    "protect_batch": "loop",
    "evaluate": "measure.evaluate",
    "Report": "measure.result",
    "ADAPTERS": "plugins",
    "METHODS": "plugins",
    "SPACES": "plugins",
    "TRANSFORMS": "plugins",
    "LoopConfig": "settings",
}


def __getattr__(name: str) -> Any:
    """Import a public name's module on first use (PEP 562) and keep the name here."""
    if name not in _PUBLIC:
        raise AttributeError(f"module 'stillguard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(f".{_PUBLIC[name]}", __name__), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(_PUBLIC))


if TYPE_CHECKING:  # the names as static tools see them
    from .adapters import load_adapter
    from .app.outputs import save_protected
    from .errors import CapabilityError, InputError, ModelError, StillguardError
    from .images import LoadedImage, load_image
    from .loop import ProgressEvent, Protected, protect, protect_batch
    from .measure.evaluate import evaluate
    from .measure.result import Report
    from .plugins import ADAPTERS, METHODS, SPACES, TRANSFORMS
    from .settings import LoopConfig

__all__ = [
    "ADAPTERS",
    "CapabilityError",
    "InputError",
    "LoadedImage",
    "LoopConfig",
    "METHODS",
    "ModelError",
    "ProgressEvent",
    "Protected",
    "Report",
    "SPACES",
    "StillguardError",
    "TRANSFORMS",
    "__version__",
    "evaluate",
    "load_adapter",
    "load_image",
    "protect",
    "protect_batch",
    "save_protected",
]
