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
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import Any

from ..errors import InputError, ModelError
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
from .inputs import BatchItem, check_writable, collect
from .manifest import MANIFEST, Manifest, read_manifest, relative, remove_stale_temporaries
from .ray_actor import ProtectWorker

log = logging.getLogger(__name__)

#: jobs queued per actor beyond the running one, so an actor never waits for the driver
IN_FLIGHT_PER_WORKER = 2


def _import_ray() -> Any:
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage statistics leave the machine
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray needs Ray, which is not installed: pip install 'stillguard[dist]'"
        ) from None
    return ray


@contextlib.contextmanager
def _runtime(address: str | None, num_cpus: int | None) -> Iterator[Any]:
    """Ray, connected: the running one, an existing cluster (``address``) or a new local runtime.

    A local runtime listens on 127.0.0.1 only, without the dashboard, and is shut down at the end;
    a runtime that was already running (e.g. started by the caller) is left running.
    """
    local = address in (None, "", "local")
    if local:
        # Ray's documented switch for single-machine runtimes: node address 127.0.0.1 (read when
        # ray is first imported, so it applies to a runtime started by this process only)
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = _import_ray()
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = dict(
        include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING
    )
    if local:
        kwargs.update(address="local", object_store_memory=200 * 2**20)
        if num_cpus:
            kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
        kwargs.pop("include_dashboard")  # a setting of the cluster's head, not of a driver
    ray.init(**kwargs)
    try:
        yield ray
    finally:
        ray.shutdown()


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


def _workers(ray: Any, n: int | None, cpus: int, gpus: int, jobs: int) -> int:
    """How many actors: ``n``, or as many as the cluster's GPUs (CPUs) allow; checked to fit."""
    total = ray.cluster_resources()
    have = total.get("GPU", 0) if gpus else total.get("CPU", 0)
    per = gpus or cpus
    fit = int(have // per)
    if n is None:
        n = min(fit, jobs)
    if n < 1 or n > fit:
        kind = "GPU" if gpus else "CPU"
        raise InputError(
            f"the Ray cluster has {have:g} {kind}s: {n or 1} worker(s) x {per} {kind} do not fit; "
            "lower --workers or --cpus-per-worker, or add nodes"
        )
    return n


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
        batch_size: inputs of one size sent to an actor together (1: one at a time).
        callback: receives :class:`BatchEvent` ``start`` (sent to a worker) and ``done`` events.
        keep_metadata: copy each input's EXIF into its PNG.
        max_pixels: input size limit.
        max_restarts: restarts of a crashed actor (Ray ``max_restarts``).
        max_task_retries: re-sends of a job whose actor died (Ray ``max_task_retries``).

    Returns:
        A :class:`BatchResult` in input order; ``exit_code`` 1 if any input failed.

    Raises:
        InputError: bad inputs or output folder, Ray missing, workers that do not fit the cluster.
        ModelError: the workers cannot load the model (the run stops; nothing is lost).
    """
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
            with _runtime(address, local_cpus) as ray:
                n = _workers(ray, num_workers, cpus_per_worker, gpus, len(todo))
                groups = _groups(items, todo, batch_size)
                opts = dict(num_cpus=cpus_per_worker, num_gpus=gpus, max_restarts=max_restarts,
                            max_task_retries=max_task_retries)  # fmt: skip
                actor_cls = ray.remote(ProtectWorker)
                actors = [
                    actor_cls.options(**opts).remote(
                        cfg, keep_metadata=keep_metadata, max_pixels=max_pixels,
                        cpus=cpus_per_worker,
                    )  # fmt: skip
                    for _ in range(n)
                ]
                _check_ready(ray, actors)
                for i, res in _dispatch(ray, actors, groups, items, emit):
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


def _check_ready(ray: Any, actors: list[Any]) -> None:
    """Wait for every actor's model; a model that cannot load stops the run with its reason."""
    from ..versions import package_versions

    try:
        facts = ray.get([a.ready.remote() for a in actors])
    except ray.exceptions.RayError as e:
        cause = getattr(e, "cause", None) or e
        raise ModelError(f"the Ray workers could not load the model: {cause}") from None
    mine = package_versions()["stillguard"]
    for f in facts:
        if f["versions"].get("stillguard") != mine:
            raise InputError(
                f"worker on {f['host']} runs stillguard {f['versions'].get('stillguard')}, the "
                f"driver {mine}: install the same version on every node"
            )


def _dispatch(
    ray: Any,
    actors: list[Any],
    groups: list[list[int]],
    items: list[BatchItem],
    emit: Callable[[BatchEvent], None],
) -> Iterator[tuple[int, ItemResult]]:
    """Keep every live actor busy; yield ``(index, result)`` as jobs finish."""
    queue = deque(groups)
    load = [0] * len(actors)
    alive = [True] * len(actors)
    flying: dict[Any, tuple[int, list[int]]] = {}
    total = len(items)
    while queue or flying:
        for k in sorted(range(len(actors)), key=lambda k: load[k]):
            while queue and alive[k] and load[k] < IN_FLIGHT_PER_WORKER:
                group = queue.popleft()
                jobs = [(i, str(items[i].input), str(items[i].output), str(items[i].sidecar))
                        for i in group]  # fmt: skip
                flying[actors[k].protect.remote(jobs)] = (k, group)
                load[k] += 1
                for i in group:
                    emit(BatchEvent("start", i, total, items[i].input))
        if not flying:  # every actor is dead: fail what is left
            for group in queue:
                yield from _failed(group, items, "every Ray worker died; run the command again")
            return
        ready, _ = ray.wait(list(flying), num_returns=1)
        for ref in ready:
            k, group = flying.pop(ref)
            load[k] -= 1
            try:
                for i, rec in ray.get(ref):
                    yield i, ItemResult(**rec)
            except ray.exceptions.RayError as e:
                if isinstance(e, ray.exceptions.ActorDiedError):
                    alive[k] = False  # out of restarts: no more jobs for it
                msg = f"the Ray worker died while protecting this input ({type(e).__name__})"
                yield from _failed(group, items, msg)


def _failed(group: list[int], items: list[BatchItem], why: str) -> Iterator[tuple[int, ItemResult]]:
    for i in group:
        yield i, ItemResult(input=str(items[i].input), status="failed", error=f"{items[i].input}: {why}")
