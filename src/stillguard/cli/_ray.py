"""`stillguard protect ... --ray [ADDRESS]`: the batch on Ray workers, with a driver progress bar."""

from __future__ import annotations

import contextlib
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ..names import shown_name
from ._common import _ignored, _stderr, _summary, _warn_demo_model, check_model_available


@contextlib.contextmanager
def _ray_progress(console: Any, disable: bool) -> Iterator[Any]:
    """One bar for the whole run: images done / to do, images per second, time left.

    Inputs found done in the manifest are taken off the total (they cost nothing); failures are
    printed as they come, successes only counted.
    """
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("protecting"), BarColumn(), MofNCompleteColumn(),
               TextColumn("{task.fields[rate]} img/s  ETA {task.fields[eta]}"), TimeElapsedColumn())  # fmt: skip
    live = not disable and console.is_terminal
    with Progress(*columns, console=console, disable=not live, transient=True) as prog:
        state: dict[str, Any] = {"task": None, "t0": None, "done": 0}

        def on_event(ev: Any) -> None:
            if state["task"] is None:
                state["task"] = prog.add_task("", total=ev.total, rate="-", eta="-")
            task = state["task"]
            if ev.kind == "start" and state["t0"] is None:
                state["t0"] = time.monotonic()
            if ev.kind != "done":
                return
            r = ev.result
            if r.status == "skipped":
                prog.update(task, total=prog.tasks[0].total - 1)
                return
            state["done"] += 1
            total = prog.tasks[0].total
            rate = state["done"] / max(time.monotonic() - (state["t0"] or time.monotonic()), 1e-9)
            eta = (total - state["done"]) / rate if rate > 0 else 0.0
            prog.update(task, completed=state["done"], rate=f"{rate:.2f}",
                        eta=time.strftime("%H:%M:%S", time.gmtime(eta)))  # fmt: skip
            if r.status == "failed" and not disable:
                from ._common import failed_line  # the name escaped (stillguard.names)

                console.print(f"failed  {failed_line(r)}", markup=False, style="red")

        yield on_event


def protect_on_ray(
    inputs: list[Path],
    out: Path,
    cfg: Any,
    json_out: bool,
    keep_metadata: bool | str,
    max_pixels: int,
    address: str,
    workers: int | None,
    cpus_per_worker: int,
    *,
    batch_size: int = 1,
    follow_symlinks: bool = False,
    verbose: bool = False,
) -> int:
    """Run the batch on Ray (a local runtime for ``address == "local"``); returns the exit code.

    Ray's own messages reach the terminal only with ``verbose`` (``--verbose``, ``--debug``): then
    its loggers and workers print as Ray does, and the errors its processes publish (a worker
    died, a task is retried) are logged by ``stillguard.ray`` at INFO, which is shown.
    """
    import logging

    from ..app.outputs import check_writable
    from ..app.run import run_ray_batch
    from ..errors import InputError

    if out.suffix.lower() == ".png":
        raise InputError(
            f"-o {shown_name(out)} is a .png file; --ray writes to an output folder: give one"
        )
    check_writable(out)
    for _, model in cfg.targets():
        check_model_available(model)
        _warn_demo_model(model)
    if verbose:
        logging.getLogger("stillguard.ray").setLevel(logging.INFO)
    err = _stderr()
    with _ray_progress(err, disable=json_out) as on_event:
        result = run_ray_batch(
            inputs,
            out,
            cfg,
            address=None if address == "local" else address,
            num_workers=workers,
            cpus_per_worker=cpus_per_worker,
            batch_size=batch_size,
            callback=on_event,
            keep_metadata=keep_metadata,
            max_pixels=max_pixels,
            follow_symlinks=follow_symlinks,
            verbose=verbose,
        )
    _ignored(result, json_out)
    return _summary(result, cfg, json_out)
