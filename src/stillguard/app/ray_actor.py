"""Deprecated: the Ray worker is :class:`stillguard.app.run.ray_worker.ProtectWorker` (kept one
release)."""

from ._moved import forward
from .run import ray_worker

__getattr__ = forward(__name__, {"ProtectWorker": ray_worker})
