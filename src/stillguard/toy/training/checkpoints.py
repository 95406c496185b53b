"""Checkpoints and progress lines of the toy training stages (resumable, atomic writes)."""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger("stillguard.toy.training.stages")


def save_checkpoint(obj: dict, path: Path) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def load_checkpoint(path: Path, s: Any) -> dict | None:
    if s.resume and path.exists():
        logger.info("resuming from %s", path)
        return torch.load(path, map_location="cpu", weights_only=False)
    return None


def log_progress(
    name: str, step: int, elapsed: float, budget: float, t0: float, s0: int, **kv
) -> None:
    rate = (step - s0) / max(time.time() - t0, 1e-6)
    extra = " ".join(f"{k} {v:.4f}" if isinstance(v, float) else f"{k} {v}" for k, v in kv.items())
    logger.info(
        "%s step %d  %.2f steps/s  elapsed %.1f min  ETA %.1f min  %s",
        name, step, rate, elapsed / 60, max(budget - elapsed, 0) / 60, extra,
    )  # fmt: skip
