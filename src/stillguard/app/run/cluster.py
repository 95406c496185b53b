"""The Ray executor: protect many images on a Ray cluster (or a local Ray runtime), exactly once,
surviving crashes.

The same output folder, names, manifest and resume rule as the local executor (:mod:`.local`):
both run through one :class:`~.driver.Driver`. Here the units of work run on Ray actors
(:class:`.ray_worker.ProtectWorker`), each holding the adapter loaded once: one actor per GPU
(``num_gpus=1``) or, on CPUs, per ``cpus_per_worker`` cores. This module only schedules.

Exactly once, here, means: after a run that ends (even after crashes and re-runs), every input
has one output PNG and sidecar under its final name and one ``ok`` manifest line per config, and
no temporary file is left. How:

* the **driver is the only writer of the manifest**; workers write outputs atomically (temporary
  file, fsync, rename) under the final names the driver decided (:mod:`.names`: the name-taken
  rule too), only when complete; the driver appends the manifest line (fsync'd) when a worker has
  returned the result;
* the driver reads (hashes) only inputs whose output name the manifest gives to some input (to
  tell a done input, or one whose name is taken); everything else is read once, by the worker that
  protects it;
* a killed worker is restarted by Ray (``max_restarts``) and the jobs it held are sent again
  (``max_task_retries``); a job done twice writes the same bytes (protection is deterministic for a
  seed) to the same name, so the outputs are still one file per input;
* a killed driver: run the same command again; the manifest lock, partial last line and stale
  temporary files are handled by :class:`.manifest.Manifest`, and temporaries left by killed
  workers are removed again when the run ends;
* a bad input is a ``failed`` line and does not stop the run (exit code 1 at the end); a worker
  that dies for good fails only the jobs it held; each actor has ``IN_FLIGHT_PER_WORKER`` jobs
  sent at most (one running, one waiting), so it never waits for the driver and a dead actor holds
  few jobs.

Storage: inputs and outputs must be on a filesystem every node sees at the same path (a local
path for a local runtime; NFS or another POSIX shared filesystem on a cluster). Object stores
(``s3://``, ``gs://``) are not supported: the atomic rename and the manifest lock need POSIX.
"""

from __future__ import annotations

import logging
import os
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from ...errors import InputError
from ...files import sha256_file
from ...images import DEFAULT_MAX_PIXELS
from ...names import shown_name
from .driver import Driver
from .groups import by_size, check_batch_size, header_size
from .manifest import remove_stale_temporaries
from .names import BatchItem
from .ray_runtime import import_ray, runtime, worker_count, workers
from .results import BatchEvent, BatchResult, ItemResult

log = logging.getLogger(__name__)

#: jobs sent to an actor and not yet returned, at most
IN_FLIGHT_PER_WORKER = 2


def _sha256(path: Any) -> str | None:
    try:
        return sha256_file(path)
    except OSError:  # the worker reports what is wrong with the file
        return None


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
    follow_symlinks: bool = False,
    verbose: bool = False,
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
            forward/backward pass per step (:mod:`.groups`); 1: one at a time. Not part of the
            run hash (results equal one-at-a-time up to float rounding).
        callback: receives :class:`BatchEvent` ``start`` (sent to a worker) and ``done`` events.
        keep_metadata: copy each input's EXIF into its PNG.
        max_pixels: input size limit.
        max_restarts: restarts of a crashed actor (Ray ``max_restarts``).
        max_task_retries: re-sends of a job whose actor died (Ray ``max_task_retries``).
        follow_symlinks: also follow links that lead out of an input folder (skipped and listed
            in :attr:`BatchResult.skipped_links` otherwise; :func:`.inputs.collect`).
        verbose: let Ray's own messages through (its loggers at INFO, its workers' output); by
            default they are kept off the terminal (:func:`.ray_runtime.runtime`).

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
                f"{shown_name(p)}: object stores are not supported (no atomic rename, no lock); "
                "mount a shared POSIX filesystem (NFS) at the same path on every node, or copy "
                "the files to one"
            )
    check_batch_size(batch_size)
    local = address in (None, "", "local")
    import_ray(local)  # before anything is written: say at once that Ray is missing
    with Driver(inputs, out_dir, cfg, keep_metadata=keep_metadata, callback=callback,
                follow_symlinks=follow_symlinks) as run:  # fmt: skip
        cuda = str(cfg.device).startswith("cuda")
        gpus = (1 if cuda else 0) if gpus_per_worker is None else int(gpus_per_worker)
        if cuda and gpus < 1:
            raise InputError(
                "device cuda needs a GPU per Ray worker: set gpus_per_worker to 1 or more"
            )
        run.manifest.open()  # lock, cut a partial line, remove stale temporaries
        todo: list[int] = []
        for i, item in enumerate(run.items):
            skipped = run.decide(i, lambda item=item: _sha256(item.input))
            if skipped is not None:
                run.finish(i, skipped)
            else:
                todo.append(i)
        if todo:
            want = num_workers * cpus_per_worker if num_workers else None
            with runtime(address, max(os.cpu_count() or 1, want or 0), verbose=verbose) as ray:
                n = worker_count(ray, num_workers, cpus_per_worker, gpus, len(todo))
                groups = by_size(todo, batch_size, key=lambda i: header_size(run.items[i].input))
                with workers(ray, n, cfg, cpus=cpus_per_worker, gpus=gpus,
                             max_restarts=max_restarts, max_task_retries=max_task_retries,
                             keep_metadata=keep_metadata, max_pixels=max_pixels) as actors:  # fmt: skip
                    for i, res in dispatch(ray, actors, groups, run.items,
                                           lambda i: run.event("start", i)):  # fmt: skip
                        run.finish(i, res)
        remove_stale_temporaries(run.out)  # left by workers killed mid-write
        return run.result()


def dispatch(
    ray: Any,
    actors: list[Any],
    groups: list[list[int]],
    items: list[BatchItem],
    started: Callable[[int], None],
) -> Iterator[tuple[int, ItemResult]]:
    """Keep every live actor busy; yield ``(index, result)`` as jobs finish.

    ``started(i)`` is called when input ``i`` is sent to a worker. A job whose actor died for good
    (out of restarts) fails its inputs (recorded, retried by the next run), and that actor gets no
    more jobs.
    """
    queue = deque(groups)
    load = [0] * len(actors)
    alive = [True] * len(actors)
    flying: dict[Any, tuple[int, list[int]]] = {}
    while queue or flying:
        while queue:  # one job at a time to the least loaded live actor
            free = [k for k in range(len(actors)) if alive[k] and load[k] < IN_FLIGHT_PER_WORKER]
            if not free:
                break
            k = min(free, key=lambda k: load[k])
            group = queue.popleft()
            jobs = [(i, str(items[i].input), str(items[i].output), str(items[i].sidecar))
                    for i in group]  # fmt: skip
            flying[actors[k].protect.remote(jobs)] = (k, group)
            load[k] += 1
            for i in group:
                started(i)
        if not flying:  # every actor is dead: fail what is left
            for group in queue:
                yield from _failed(group, items, "every Ray worker died; run the command again")
            return
        ready, _ = ray.wait(list(flying), num_returns=1)
        for ref in ready:
            k, group = flying.pop(ref)
            load[k] -= 1
            try:
                results = ray.get(ref)
            except ray.exceptions.RayActorError as e:
                alive[k] = alive[k] and not isinstance(e, ray.exceptions.ActorDiedError)
                msg = f"the Ray worker died while protecting this input ({type(e).__name__})"
                yield from _failed(group, items, msg)
                continue
            except ray.exceptions.RayError as e:  # a bug, not a bad input (those are results)
                cause = getattr(e, "cause", None) or e
                yield from _failed(group, items, f"{type(cause).__name__}: {cause}")
                continue
            for i, rec in results:
                yield i, ItemResult(**rec)


def _failed(group: list[int], items: list[BatchItem], why: str) -> Iterator[tuple[int, ItemResult]]:
    for i in group:
        res = ItemResult(
            input=str(items[i].input), status="failed", error=f"{shown_name(items[i].input)}: {why}"
        )
        yield i, res
