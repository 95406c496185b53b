"""The Ray plumbing of the Ray executor (:mod:`.cluster`): connect (or start a local runtime),
size the worker pool, start the workers and check them.

Ray is imported inside these functions only: ``import stillguard`` works without the ``dist``
extra. Choices:
    * a local runtime listens on 127.0.0.1 only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``: Ray's
      switch for single-machine runtimes, read when Ray is first imported, so set before that;
      the raylet's ``--node_ip_address`` is checked by the tests on Ray 2.60), runs no dashboard
      and sends no usage statistics (``RAY_USAGE_STATS_ENABLED=0`` unless set);
    * a local runtime leaves no process behind, however the driver ends: ``ray.shutdown()`` when
      it ends normally or with an error, and a reaper (:mod:`.ray_reaper`) that stops what is left
      once the driver is gone, killed included;
    * Ray's own output stays off the terminal unless ``verbose``: its loggers are set above
      CRITICAL for the run, its workers' output is not sent to the driver (``log_to_driver``), and
      the errors its processes publish (a worker died, a task is retried), which Ray's driver
      prints to stdout in colour whatever ``log_to_driver`` says, go to the logger
      ``stillguard.ray`` at INFO instead (stdout carries ``--json``);
    * a worker that Ray restarts after a crash (``max_restarts``) builds its model again; a job it
      held is sent again (``max_task_retries``);
    * every worker is stopped when the run ends, also when it ends with an error.
"""

from __future__ import annotations

import contextlib
import logging
import os
import socket
import subprocess
import sys
from collections.abc import Iterator
from typing import Any

from ...errors import InputError, ModelError

log = logging.getLogger(__name__)
#: Ray's own messages (shown by the CLI with ``--verbose``)
RAY_LOG = logging.getLogger("stillguard.ray")
#: the level of Ray's loggers in a quiet run: above CRITICAL, nothing passes
QUIET = logging.CRITICAL + 10


def import_ray(local: bool = False) -> Any:
    """The ``ray`` module, or an :class:`InputError` saying how to install it.

    ``local``: a local runtime will be started; Ray then keeps to the loopback address, a switch
    read when Ray is first imported (so this is the first import of Ray a run makes).
    """
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")  # no usage statistics leave the machine
    if local:  # ray_constants.ENABLE_RAY_CLUSTER: the node uses the loopback address
        os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    try:
        import ray
    except ImportError:
        raise InputError(
            "--ray needs Ray, which is not installed: pip install 'stillguard[dist]'"
        ) from None
    return ray


@contextlib.contextmanager
def runtime(address: str | None, num_cpus: int | None, *, verbose: bool = False) -> Iterator[Any]:
    """Ray, connected: the running one, an existing cluster (``address``) or a new local runtime.

    A local runtime listens on 127.0.0.1 only, without the dashboard, and is shut down at the end,
    its reaper (:mod:`.ray_reaper`) making sure nothing of it stays; a runtime that was already
    running (e.g. started by the caller) is left running, and its output settings alone.
    ``verbose``: Ray's own output as Ray prints it (see the module's docstring).
    """
    local = address in (None, "", "local")
    ray = import_ray(local)
    if ray.is_initialized():
        yield ray
        return
    kwargs: dict[str, Any] = dict(
        include_dashboard=False,
        log_to_driver=verbose,
        logging_level=logging.INFO if verbose else QUIET,
    )
    if local:
        kwargs.update(address="local", object_store_memory=200 * 2**20)
        if num_cpus:
            kwargs["num_cpus"] = num_cpus
    else:
        kwargs["address"] = address
        kwargs.pop("include_dashboard")  # a setting of the cluster's head, not of a driver
        _probe(address)
    with _reaper(ray) if local else contextlib.nullcontext(), _ray_output():
        try:
            ray.init(**kwargs)
        except (ConnectionError, ValueError, RuntimeError) as e:
            where = (
                "start a local Ray runtime" if local else f"connect to the Ray cluster at {address}"
            )
            raise InputError(
                f"cannot {where} ({' '.join(str(e).split())[:300]}); check the address "
                "(auto, HOST:PORT, ray://HOST:10001) and that the cluster is up (ray status)"
            ) from None
        try:
            yield ray
        finally:
            ray.shutdown()


@contextlib.contextmanager
def _reaper(ray: Any) -> Iterator[None]:
    """The reaper (:mod:`.ray_reaper`) of the local runtime this process is about to start; at the
    end of the block its pipe is closed and it is waited for (it stops whatever is left)."""
    from . import ray_reaper

    ray_dir = os.path.dirname(os.path.abspath(ray.__file__)) + os.sep
    try:
        if not (ray_reaper.available() and sys.executable):
            raise OSError("no /proc or no Python executable here")
        proc = subprocess.Popen(
            [sys.executable, "-I", os.path.abspath(ray_reaper.__file__), str(os.getpid()), ray_dir],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
        )
    except OSError as e:
        log.info("no Ray reaper (%s): a killed run may leave Ray processes", e)
        yield
        return
    assert proc.stdin is not None and proc.stdout is not None
    with proc.stdout:  # nothing of the runtime starts before it has noted what is not
        if proc.stdout.readline().strip() != b"ready":  # pragma: no cover - it could not start
            log.warning("the Ray reaper did not start; a killed run may leave Ray processes")
    try:
        yield
    finally:
        proc.stdin.close()
        try:
            proc.wait(timeout=ray_reaper.GRACE + 60)
        except subprocess.TimeoutExpired:  # pragma: no cover - a machine far too loaded
            log.warning("the Ray reaper did not finish; some Ray processes may remain")
            proc.kill()
            proc.wait()


@contextlib.contextmanager
def _ray_output() -> Iterator[None]:
    """For the run: the errors Ray's processes publish go to :data:`RAY_LOG` (not stdout), the
    rest of what Ray prints as Ray prints it; Ray's logger level (``ray.init`` sets it) is
    restored at the end."""
    ray_logger = logging.getLogger("ray")
    level = ray_logger.level
    try:
        from ray._private import worker as ray_worker  # Ray 2.60: listen_error_messages prints
    except ImportError:  # pragma: no cover - another Ray layout
        ray_worker = None
    printer = getattr(ray_worker, "print_to_stdstream", None)

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        if data.get("pid") != "raylet":  # workers' output (log_to_driver: verbose): as Ray prints
            printer(data, ignore_prefix)
            return
        for line in data.get("lines", []):
            RAY_LOG.info("(raylet) %s", line)

    if printer is not None:
        ray_worker.print_to_stdstream = to_log
    try:
        yield
    finally:
        if printer is not None:
            ray_worker.print_to_stdstream = printer
        ray_logger.setLevel(level)


def _probe(address: str, timeout: float = 10.0) -> None:
    """Refuse a ``HOST:PORT`` / ``ray://HOST:PORT`` address where nothing listens (``ray.init``
    would retry for minutes); ``auto`` is left to Ray, which fails fast when it finds no cluster."""
    hostport = address.split("://", 1)[-1].rstrip("/")
    host, _, port = hostport.rpartition(":")
    if not host or not port.isdigit():
        return
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=timeout).close()
    except OSError as e:
        raise InputError(
            f"cannot connect to the Ray cluster at {address} ({e.strerror or e}); check the "
            "address (auto, HOST:PORT, ray://HOST:10001) and that the cluster is up (ray status)"
        ) from None


def worker_count(ray: Any, n: int | None, cpus: int, gpus: int, jobs: int) -> int:
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


def check_ready(ray: Any, actors: list[Any]) -> None:
    """Wait for every actor's model; a model that cannot load stops the run with its reason."""
    from ...versions import package_versions

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


@contextlib.contextmanager
def workers(ray: Any, n: int, cfg: Any, *, cpus: int, gpus: int, max_restarts: int,
            max_task_retries: int, **worker_options: Any) -> Iterator[list[Any]]:  # fmt: skip
    """``n`` :class:`~.ray_worker.ProtectWorker` actors, each with its model loaded and checked
    (:func:`check_ready`); all of them are killed when the block ends, however it ends."""
    from .ray_worker import ProtectWorker

    opts = dict(num_cpus=cpus, num_gpus=gpus, max_restarts=max_restarts,
                max_task_retries=max_task_retries)  # fmt: skip
    actor_cls = ray.remote(ProtectWorker)
    actors = [actor_cls.options(**opts).remote(cfg, cpus=cpus, **worker_options) for _ in range(n)]
    try:
        check_ready(ray, actors)
        yield actors
    finally:
        for a in actors:
            ray.kill(a, no_restart=True)
