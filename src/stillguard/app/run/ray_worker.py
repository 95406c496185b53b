"""The Ray worker of a distributed batch: one process per GPU (or per ``cpus`` CPU cores) that
loads the adapter once and protects the inputs it is sent.

This module never imports Ray: :func:`.ray_runtime.workers` wraps :class:`ProtectWorker` with
``ray.remote`` at run time, so ``import stillguard`` works without the ``dist`` extra.

Choices:
    * the worker reads each input itself, from a filesystem every node sees (one read: bytes,
      hash, decode) and runs the unit of work on it (:func:`.unit.protect_paths`: the PNG and
      sidecar written atomically under the final names the driver decided); it never writes the
      manifest (the driver is its only writer);
    * the adapter is built once, in the constructor, from the run config; a worker that Ray
      restarts after a crash builds it again;
    * on a GPU worker Ray sets ``CUDA_VISIBLE_DEVICES`` to the one GPU it reserved, so a config
      device ``cuda:N`` becomes ``cuda`` here (that GPU); a CPU worker uses ``cpus`` torch threads;
    * a job is a list of inputs of one size (a group, ``batch_size`` at most): the worker protects
      the readable ones with one :func:`stillguard.loop.protect_batch` call (one forward/backward
      per step for the whole group; one at a time for a method that is not batchable).
"""

from __future__ import annotations

import os
import socket
from pathlib import Path
from typing import Any

from ...images import DEFAULT_MAX_PIXELS
from .names import BatchItem
from .unit import protect_paths

#: one job: (index in the run, input path, output PNG path, sidecar path), paths as strings
Job = tuple[int, str, str, str]


class ProtectWorker:
    """Holds one loaded adapter; :meth:`protect` runs a group of jobs and returns their results."""

    def __init__(
        self,
        cfg: Any,
        *,
        keep_metadata: bool = False,
        max_pixels: int = DEFAULT_MAX_PIXELS,
        cpus: int = 1,
    ) -> None:
        import torch

        from ..models import load_target

        torch.set_num_threads(max(1, int(cpus)))
        self.cfg = cfg
        self.keep_metadata = keep_metadata
        self.max_pixels = max_pixels
        device = "cuda" if str(cfg.device).startswith("cuda") else cfg.device  # Ray's GPU
        adapters = [
            load_target(name, model, device, cfg.dtype, cfg.target_options)
            for name, model in cfg.targets()  # one target, or every member of an ensemble
        ]
        self.adapter = adapters[0] if len(adapters) == 1 else adapters

    def ready(self) -> dict[str, Any]:
        """Facts the driver checks once: process id, host, stillguard version."""
        from ...versions import package_versions

        return {"pid": os.getpid(), "host": socket.gethostname(), "versions": package_versions()}

    def protect(self, jobs: list[Job]) -> list[tuple[int, dict[str, Any]]]:
        """Protect the jobs' inputs together; returns ``(index, ItemResult.to_dict())`` per job,
        in order (an unreadable input fails alone)."""
        items = [BatchItem(Path(src), Path(png), Path(side)) for _, src, png, side in jobs]
        results = protect_paths(
            items,
            self.cfg,
            self.adapter,
            keep_metadata=self.keep_metadata,
            max_pixels=self.max_pixels,
        )
        return [(job[0], res.to_dict()) for job, res in zip(jobs, results, strict=True)]
