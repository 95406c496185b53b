"""Protect many images on a Ray cluster (or a local Ray runtime), exactly once, surviving crashes.

The same output folder, manifest and resume rule as :func:`stillguard.app.batch.run_batch`, with
the work spread over Ray actors (:class:`stillguard.app.ray_actor.ProtectWorker`), each holding
the adapter loaded once: one actor per GPU (``num_gpus=1``) or, on CPUs, per ``cpus_per_worker``
cores.

Exactly once, here, means: after a run that ends (even after crashes and re-runs), every input
has one output PNG and sidecar under its final name and one ``ok`` manifest line per config, and
no temporary file is left. How:

* the **driver is the only writer of the manifest**; workers write outputs atomically (temporary
  file, fsync, rename) under their final names, only when complete; the driver appends the
  manifest line (fsync'd) when a worker has returned the result;
* the driver skips inputs that are done (same input SHA-256, config hash and output path, the
  output intact - :class:`.manifest.Manifest`); it reads (hashes) only inputs the manifest has an
  ``ok`` line for, everything else is read once, by the worker that protects it;
* a killed worker is restarted by Ray (``max_restarts``) and the jobs it held are sent again
  (``max_task_retries``); a job done twice writes the same bytes (protection is deterministic for a
  seed) to the same name, so the outputs are still one file per input;
* a killed driver: run the same command again; the manifest lock, partial last line and stale
  temporary files are handled by :class:`.manifest.Manifest`, and temporaries left by killed
  workers are removed again when the run ends;
* a bad input is a ``failed`` line and does not stop the run (exit code 1 at the end); a worker
  that dies for good fails only the jobs it held.

Storage: inputs and outputs must be on a filesystem every node sees at the same path (a local
path for a local runtime; NFS or another POSIX shared filesystem on a cluster). Object stores
(``s3://``, ``gs://``) are not supported: the atomic rename and the manifest lock need POSIX.
"""

from __future__ import annotations

import contextlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import sha256_file
from ..images import DEFAULT_MAX_PIXELS
from .batch import (
    BatchEvent,
    BatchResult,
    ItemResult,
    manifest_record,
    run_hash,
    skipped_result,
)
from .batch_groups import check_batch_size
from .inputs import BatchItem, check_writable, collect
from .manifest import MANIFEST, Manifest, read_manifest, relative, remove_stale_temporaries
from .ray_actor import ProtectWorker
from .ray_cluster import check_ready, dispatch, import_ray, runtime, worker_count

log = logging.getLogger(__name__)


def _pending(
    items: list[BatchItem], out: Path, manifest: Manifest, chash: str
) -> tuple[dict[int, ItemResult], list[int]]:
    """Split the inputs into done ones (skipped results) and the indices still to protect."""
    done_outputs = {
        r.get("output")
        for r in read_manifest(out / MANIFEST)
        if r.get("status") == "ok" and r.get("config_hash") == chash
    }
    skipped: dict[int, ItemResult] = {}
    todo: list[int] = []
    for i, item in enumerate(items):
        rel = relative(item.output, out)
        rec = None
        if rel in done_outputs:  # only then is the input read here (to hash it)
            with contextlib.suppress(OSError):
                rec = manifest.done(sha256_file(item.input), chash, rel)
        if rec is not None:
            skipped[i] = skipped_result(rec, item, chash)
        else:
            todo.append(i)
    return skipped, todo


def _groups(items: list[BatchItem], todo: list[int], batch_size: int) -> list[list[int]]:
    """Inputs of one size together, ``batch_size`` at most a group (1: input order, no reads)."""
    if batch_size <= 1:
        return [[i] for i in todo]
    from PIL import Image

    by_size: dict[Any, list[int]] = {}
    for i in todo:
        try:
            with Image.open(items[i].input) as im:  # header only
                key: Any = im.size
        except Exception:  # noqa: BLE001 - the worker reports what is wrong with the file
            key = None
        by_size.setdefault(key, []).append(i)
    return [g[k : k + batch_size] for g in by_size.values() for k in range(0, len(g), batch_size)]


def run_ray_batch(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    cfg: Any,
    *,
    address: str | None = None,
    num_workers: int | None = None,
    cpus_per_worker: int = 1,
    gpus_per_worker: int | None = None,
    batch_size: int = 1,
    callback: Callable[[BatchEvent], None] | None = None,
    keep_metadata: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    max_restarts: int = 10,
    max_task_retries: int = 3,
) -> BatchResult:
    """Protect every input into ``out_dir`` on Ray actors, resuming from ``out_dir/manifest.jsonl``.

    Args:
        inputs: image files and folders, on a filesystem every node sees.
        out_dir: output folder, on that filesystem.
        cfg: a :class:`stillguard.app.config.RunConfig`; each actor loads its adapter once.
        address: ``None``/``"local"``: a new local runtime (or the one this process already
            started); ``"auto"``, ``"HOST:PORT"`` or ``"ray://HOST:10001"``: an existing cluster.
        num_workers: actors; default: as many as the cluster's GPUs (CPU devices: CPUs divided by
            ``cpus_per_worker``), at most one per input to protect.
        cpus_per_worker: CPU cores reserved per actor (its torch threads on a CPU device).
        gpus_per_worker: GPUs per actor; default 1 for a ``cuda`` device, 0 otherwise.
        batch_size: inputs of one size sent to an actor together and protected in one
            forward/backward pass per step (:func:`stillguard.loop.protect_batch`); 1: one at a
            time. Not part of the run hash (results equal one-at-a-time up to float rounding).
        callback: receives :class:`BatchEvent` ``start`` (sent to a worker) and ``done`` events.
        keep_metadata: copy each input's EXIF into its PNG.
        max_pixels: input size limit.
        max_restarts: restarts of a crashed actor (Ray ``max_restarts``).
        max_task_retries: re-sends of a job whose actor died (Ray ``max_task_retries``).

    Returns:
        A :class:`BatchResult` in input order; ``exit_code`` 1 if any input failed.

    Raises:
        InputError: bad inputs, output folder or ``batch_size``, Ray missing, workers that do not
            fit the cluster.
        ModelError: the workers cannot load the model (the run stops; nothing is lost).
    """
    inputs = [os.fspath(p) for p in inputs]
    for p in (*inputs, os.fspath(out_dir)):
        if "://" in p:
            raise InputError(
                f"{p}: object stores are not supported (no atomic rename, no lock); mount a shared "
                "POSIX filesystem (NFS) at the same path on every node, or copy the files to one"
            )
    check_batch_size(batch_size)
    import_ray()  # before anything is written: say at once that Ray is missing
    out = Path(out_dir)
    items = collect(inputs, out)
    check_writable(out)
    cuda = str(cfg.device).startswith("cuda")
    gpus = (1 if cuda else 0) if gpus_per_worker is None else int(gpus_per_worker)
    if cuda and gpus < 1:
        raise InputError("device cuda needs a GPU per Ray worker: set gpus_per_worker to 1 or more")
    chash = run_hash(cfg, keep_metadata)
    emit = callback or (lambda event: None)
    run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    results: dict[int, ItemResult] = {}
    with Manifest(out) as manifest:
        manifest.open()  # lock, cut a partial line, remove stale temporaries
        skipped, todo = _pending(items, out, manifest, chash)
        for i, res in skipped.items():
            results[i] = res
            emit(BatchEvent("done", i, len(items), items[i].input, result=res))
        if todo:
            want = num_workers * cpus_per_worker if num_workers else None
            local_cpus = max(os.cpu_count() or 1, want or 0)
            with runtime(address, local_cpus) as ray:
                n = worker_count(ray, num_workers, cpus_per_worker, gpus, len(todo))
                groups = _groups(items, todo, batch_size)
                opts = dict(num_cpus=cpus_per_worker, num_gpus=gpus, max_restarts=max_restarts,
                            max_task_retries=max_task_retries)  # fmt: skip
                actor_cls = ray.remote(ProtectWorker)
                actors = [
                    actor_cls.options(**opts).remote(
                        cfg,
                        keep_metadata=keep_metadata,
                        max_pixels=max_pixels,
                        cpus=cpus_per_worker,
                    )  # fmt: skip
                    for _ in range(n)
                ]
                check_ready(ray, actors)
                for i, res in dispatch(ray, actors, groups, items, emit):
                    res.config_hash = res.config_hash or chash
                    manifest.append(manifest_record(res, items[i], out, run_id))
                    results[i] = res
                    emit(BatchEvent("done", i, len(items), items[i].input, result=res))
                for a in actors:
                    ray.kill(a, no_restart=True)
        remove_stale_temporaries(out)  # left by workers killed mid-write
    result = BatchResult(manifest=out / MANIFEST, config_hash=chash)
    result.items = [results[i] for i in range(len(items))]
    result.nothing_read = not any(r.input_sha256 for r in result.items)
    return result
