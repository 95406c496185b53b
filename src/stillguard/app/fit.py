"""Fit a run to a GPU: let the planner choose the memory-ladder rungs, then apply them.

``stillguard protect --gpu-memory 24GiB`` (or ``auto`` on CUDA: the free memory) plans the run on
fake tensors from the target's configuration (:mod:`stillguard.plan`), climbs the ladder in its
fixed, documented order (:data:`stillguard.plan.LADDER`: bf16, gradient checkpointing, VAE slicing
and tiling, exact-row sampled attention with fewer and fewer rows, frame-pooled attention, fewer
attack frames, lower attack resolution, fewer attacked layers) until the plan fits, and returns the run configuration with those settings applied; the
rungs are recorded in the run configuration (and so in every sidecar). When nothing fits, the
planner's error gives the smallest need.

Choices: the plan uses the run's own method, method options, target options, steps and dtype; its
EOT draws come from the run's preset file; an ensemble is refused (the planner sizes one target);
with ``batch_size`` > 1 the whole batch must fit (a method that cannot batch is planned for one
image, as it will run).
"""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

from ..errors import InputError
from .config import RunConfig


def fit_config(
    cfg: RunConfig, gpu_memory: str | int, *, gpu: str = "H100", batch_size: int = 1
) -> tuple[RunConfig, Any]:
    """``cfg`` with the memory-ladder rungs that make it fit ``gpu_memory``, and the plan.

    Raises:
        InputError: an ensemble, or an unreadable size.
        stillguard.plan.LadderError: nothing fits (the message gives the smallest need).
    """
    from ..plan import choose_rungs
    from ..plan.rungs import Settings, apply_all
    from ..registry import METHODS

    if len(cfg.targets()) > 1:
        raise InputError(
            "--gpu-memory plans one target at a time; plan each member with `stillguard plan` "
            "and use target.offload for an ensemble"
        )
    if batch_size > 1 and not METHODS.build(cfg.method_name, **cfg.method_options).batchable():
        batch_size = 1  # protect_batch runs such a method one image at a time
    preset = cfg.source if cfg.source.endswith(".toml") and Path(cfg.source).is_file() else None
    rungs, plan = choose_rungs(
        cfg.target_name,
        gpu_memory=gpu_memory,
        model=cfg.model,
        method=cfg.method_name,
        preset=preset,
        method_options=dict(cfg.method_options),
        adapter_options=dict(cfg.target_options),
        steps=cfg.loop.steps,
        dtype=cfg.dtype,
        gpu=gpu,
        batch_size=batch_size,
    )
    settings = apply_all(
        rungs, Settings(cfg.dtype, dict(cfg.target_options), dict(cfg.method_options))
    )
    fitted = dataclasses.replace(
        cfg,
        dtype=settings.dtype,
        target_options=settings.adapter,
        method_options=settings.method,
        rungs=list(rungs),
    )
    return fitted, plan
