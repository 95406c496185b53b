"""stillguard: protect photos against image-to-video models, and prove it.

The public API is imported here explicitly, and no public name is also the name of a submodule,
so ``from stillguard import protect`` and ``stillguard.protect(...)`` always give the function,
whatever else has been imported, in any order and any number of times::

    from stillguard import load_adapter, load_image, protect, save_protected, evaluate

Layers (``docs/architecture.md``): the core (``loop``, ``settings``, ``images``, ``files``,
``tensors``, ``spaces``, ``transforms``, ``adapters``, ``methods``) never imports ``measure``,
``app`` or the fronts; ``measure`` never imports ``app``.
"""

from __future__ import annotations

__version__ = "0.1.0"

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
