"""Deprecated: what a run reports is :mod:`stillguard.app.run.results` (kept one release)."""

from ._moved import forward
from .run import results

__getattr__ = forward(
    __name__, {name: results for name in ("ItemResult", "BatchEvent", "BatchResult")}
)
