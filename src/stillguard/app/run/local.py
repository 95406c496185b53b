"""The local executor: protect many images with one model loaded in this process, resumably.

A crash or SIGKILL loses and repeats nothing. Layout of an output folder::

    OUT/NAME.protected.png    protected image (alpha re-attached, metadata stripped by default)
    OUT/NAME.protected.json   sidecar: input facts, resolved config, metrics, losses, warnings
    OUT/manifest.jsonl        one JSON line per finished input (:mod:`.manifest`)

This module only schedules: names and resume are :mod:`.names`', the work is :mod:`.unit`'s, the
manifest is the :class:`~.driver.Driver`'s. Choices:
    * each input file is read **once**, here, before its name is decided (the naming and resume
      rule needs its SHA-256); a done input is recognised from that same read;
    * the model is loaded lazily, at the first input that needs protecting (a finished run that
      is resumed never loads it);
    * the manifest opens when the first input has been read (a run whose inputs are all unreadable
      writes nothing); per input: PNG (atomic), sidecar (atomic), then its manifest line;
    * one bad input does not stop a batch, a full (or read-only) disk does (at the first failed
      write, naming the file);
    * ``batch_size > 1`` protects inputs of one size together (:mod:`.groups`); it is not part of
      the run hash (each image gets what it gets alone, up to float rounding), so a run resumed
      with another batch size skips what is done.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any

from ...images import DEFAULT_MAX_PIXELS, LoadedImage
from .driver import Driver
from .groups import Pending, tensor_size
from .names import BatchItem
from .results import BatchEvent, BatchResult
from .unit import attempt, protect_group, read

log = logging.getLogger(__name__)


@dataclass
class Waiting:
    """A read input waiting for its group: its index in the run, paths, pixels, when it started."""

    index: int
    item: BatchItem
    loaded: LoadedImage
    t0: float


def run_batch(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    cfg: Any,
    adapter: Any,
    *,
    callback: Callable[[BatchEvent], None] | None = None,
    keep_metadata: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    batch_size: int = 1,
    follow_symlinks: bool = False,
) -> BatchResult:
    """Protect every input image into ``out_dir``, resuming from ``out_dir/manifest.jsonl``.

    Args:
        inputs: image files and folders.
        out_dir: output folder (created when the first input has been read).
        cfg: a :class:`stillguard.app.config.RunConfig`.
        adapter: a loaded adapter, or a zero-argument callable that loads it (called at most once,
            and only if some input needs protecting).
        callback: receives :class:`BatchEvent` progress: per input ``start`` (when it is read),
            ``step`` events (in a batch: the batch's mean loss) and ``done``.
        keep_metadata: copy each input's EXIF into its PNG.
        max_pixels: input size limit.
        batch_size: inputs of one size protected together, in one forward/backward pass each step
            (:func:`stillguard.loop.protect_batch`); 1: one at a time. Not part of the run hash.
            With more than 1, outputs and manifest lines are written group by group (in input
            order within a group); :attr:`BatchResult.items` stay in input order.
        follow_symlinks: also follow links that lead out of an input folder (skipped and listed
            in :attr:`BatchResult.skipped_links` otherwise; :func:`.inputs.collect`).

    Returns:
        A :class:`BatchResult`; ``exit_code`` is 1 if any input failed, 2 if none could be read.

    Raises:
        InputError: bad output folder, inputs (see :func:`.inputs.collect`) or ``batch_size``; a
            model that cannot be loaded raises its own error and stops the batch.
    """
    pending: Pending[Waiting] = Pending(batch_size)
    model: list[Any] = [] if callable(adapter) and not hasattr(adapter, "describe") else [adapter]
    with Driver(inputs, out_dir, cfg, keep_metadata=keep_metadata, callback=callback,
                follow_symlinks=follow_symlinks) as run:  # fmt: skip

        def flush(group: list[Waiting]) -> None:
            if not model:
                model.append(adapter())  # a model that cannot load stops the batch

            def step(k: int, ev: Any) -> None:
                run.event("step", group[k].index, step=ev.step, steps=ev.steps, loss=ev.loss)

            done = protect_group(
                [(w.item, w.loaded) for w in group], cfg, model[0], keep_metadata=keep_metadata,
                callback=step, clean_stale=False,  # done when the manifest opened
            )  # fmt: skip
            for w, res in zip(group, done, strict=True):
                run.finish(w.index, res, w.t0)

        for i, item in enumerate(run.items):
            run.event("start", i)
            t0 = time.perf_counter()
            res = run.failed(i)
            loaded = attempt(res, lambda item=item: read(item.input, max_pixels))
            if loaded is None:
                run.finish(i, res, t0)
                continue
            run.manifest.open()  # lock, cut a partial line, remove stale temporaries
            skipped = run.decide(i, lambda loaded=loaded: loaded.sha256)
            if skipped is not None:
                run.finish(i, skipped, t0)
                continue
            for group in pending.add(Waiting(i, run.items[i], loaded, t0), tensor_size(loaded)):
                flush(group)
        for group in pending.drain():
            flush(group)
        return run.result()
