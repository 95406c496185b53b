"""Old import paths of the batch path, kept for one release: the names now live in
:mod:`stillguard.app.run` (and :func:`stillguard.app.outputs.check_writable`).

Each old module (``stillguard.app.batch``, ``.ray_runner``, ``.ray_actor``, ``.inputs``,
``.manifest``, ``.results``) is a thin re-export: reading one of its names (``from
stillguard.app.batch import run_batch``) returns the new object and raises a
:class:`DeprecationWarning` that names the new path. They go in the next release.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from types import ModuleType
from typing import Any


def forward(old: str, names: dict[str, ModuleType]) -> Callable[[str], Any]:
    """A module ``__getattr__`` for the old module ``old``: ``names`` maps each kept name to the
    module that holds it now."""

    def __getattr__(name: str) -> Any:
        home = names.get(name)
        if home is None:
            raise AttributeError(f"module {old!r} has no attribute {name!r}")
        warnings.warn(
            f"{old}.{name} has moved: import it from {home.__name__} ({old} goes in the next "
            "release)",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(home, name)

    return __getattr__
