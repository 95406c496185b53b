"""Deprecated: the Ray runner is :func:`stillguard.app.run.run_ray_batch` (kept one release)."""

from . import run
from ._moved import forward

__getattr__ = forward(__name__, {"run_ray_batch": run})
