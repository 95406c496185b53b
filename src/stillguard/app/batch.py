"""Deprecated: the local batch runner is :func:`stillguard.app.run.run_batch` (kept one release)."""

from . import run
from ._moved import forward
from .run import results

__getattr__ = forward(
    __name__,
    {"run_batch": run, "run_hash": run, "BatchEvent": results, "BatchResult": results,
     "ItemResult": results},
)  # fmt: skip
