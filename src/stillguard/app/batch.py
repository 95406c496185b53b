"""Protect many images with one loaded model, resumably: a crash or SIGKILL loses and repeats nothing.

Layout of an output folder::

    OUT/NAME.protected.png    protected image (alpha re-attached, metadata stripped by default)
    OUT/NAME.protected.json   sidecar: input facts, resolved config, metrics, losses, warnings
    OUT/manifest.jsonl        one JSON line per finished input (see :mod:`.manifest`)

Choices:
    * each input file is read **once**: its bytes are hashed, decoded and protected from that one
      read (:func:`stillguard.images.load_image`); a done input is recognised from the same read;
    * the model is loaded lazily, at the first input that needs protecting (a finished run that
      is resumed never loads it);
    * order of writes per input: PNG (atomic), sidecar (atomic), then the manifest line (appended,
      fsync'd); the config hash also covers ``keep_metadata`` (it changes the output bytes);
    * inputs and outputs are named by :mod:`.inputs`; one bad input does not stop a batch, a full
      (or read-only) disk does: it stops at the first failed write, naming the file;
    * ``batch_size > 1`` protects inputs of one size together (:mod:`.batch_groups`); it is not
      part of the run hash (each image gets what it gets alone, up to float rounding), so a run
      resumed with another batch size skips what is done.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..images import DEFAULT_MAX_PIXELS, load_image
from .batch_groups import Pending, Waiting, protect_group
from .inputs import BatchItem, check_writable, collect, tagged
from .jobs import attempt, protect_file, run_hash, save_result  # noqa: F401  (re-exported)
from .manifest import MANIFEST, Manifest, relative
from .results import BatchEvent, BatchResult, ItemResult

log = logging.getLogger(__name__)


def manifest_record(res: ItemResult, item: BatchItem, out: Path, run_id: str) -> dict[str, Any]:
    """The manifest line of a result: paths relative to ``out``, the input absolute, run and time."""
    record = {
        **res.to_dict(),
        "input": os.path.abspath(item.input),
        "output": relative(res.output, out),
        "sidecar": relative(res.sidecar, out),
    }
    record.update(run=run_id, time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return record


def skipped_result(rec: dict[str, Any], item: BatchItem, chash: str) -> ItemResult:
    """The result of an input found done in the manifest (``rec`` is its ``ok`` line)."""
    return ItemResult(
        input=str(item.input),
        status="skipped",
        output=str(item.output),
        sidecar=str(item.sidecar),
        input_sha256=rec.get("input_sha256"),
        output_sha256=rec.get("output_sha256"),
        config_hash=chash,
        real_model=rec.get("real_model"),
    )


# ----------------------------------------------------------------------------- batch
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
            (:func:`stillguard.loop.protect_batch`, see :mod:`.batch_groups`); 1: one at a time.
            Not part of the run hash: results equal one-at-a-time ones up to float rounding.
            With more than 1, outputs and manifest lines are written group by group (in input
            order within a group); :attr:`BatchResult.items` stay in input order.

    Returns:
        A :class:`BatchResult`; ``exit_code`` is 1 if any input failed, 2 if none could be read.

    Raises:
        InputError: bad output folder, inputs (see :func:`stillguard.app.inputs.collect`) or
            ``batch_size``; a model that cannot be loaded raises its own error and stops the batch.
    """
    pending = Pending(batch_size)
    out = Path(out_dir)
    ignored: list[Path] = []
    items = collect(inputs, out, ignored)
    check_writable(out)
    chash = run_hash(cfg, keep_metadata)
    result = BatchResult(
        manifest=out / MANIFEST, config_hash=chash, ignored=list(map(str, ignored))
    )
    emit = callback or (lambda event: None)
    model: list[Any] = [] if callable(adapter) and not hasattr(adapter, "describe") else [adapter]
    run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
    slots: list[ItemResult | None] = [None] * len(items)
    with Manifest(out) as manifest:

        def finish(i: int, item: BatchItem, res: ItemResult, t0: float) -> None:
            res.seconds = res.seconds or round(time.perf_counter() - t0, 3)
            if res.status != "skipped":
                manifest.append(manifest_record(res, item, out, run_id))
            slots[i] = res
            emit(BatchEvent("done", i, len(items), item.input, result=res))

        def flush(group: list[Waiting]) -> None:
            if not model:
                model.append(adapter())  # a model that cannot load stops the batch

            def step(k: int, ev: Any) -> None:
                w = group[k]
                emit(BatchEvent("step", w.index, len(items), w.item.input, ev.step, ev.steps,
                                ev.loss))  # fmt: skip

            done = protect_group(
                [(w.item, w.loaded) for w in group], cfg, model[0], keep_metadata=keep_metadata,
                callback=step, clean_stale=False,  # done when the manifest opened
            )  # fmt: skip
            for w, res in zip(group, done, strict=True):
                finish(w.index, w.item, res, w.t0)

        for i, item in enumerate(items):
            emit(BatchEvent("start", i, len(items), item.input))
            t0 = time.perf_counter()
            res = ItemResult(input=str(item.input), status="failed", config_hash=chash)
            loaded = attempt(res, lambda item=item: load_image(item.input, max_pixels=max_pixels))
            if loaded is None:
                finish(i, item, res, t0)
                continue
            manifest.open()  # lock, cut a partial line, remove stale temporaries
            rel_out = relative(item.output, out)
            if manifest.taken(rel_out, os.path.abspath(item.input), loaded.sha256):
                item = tagged(item)  # an earlier run gave this name to another input
                rel_out = relative(item.output, out)
            rec = manifest.done(loaded.sha256, chash, rel_out)
            if rec is not None:
                finish(i, item, skipped_result(rec, item, chash), t0)
                continue
            for group in pending.add(Waiting(i, item, loaded, t0)):
                flush(group)
        for group in pending.drain():
            flush(group)
        result.items = [r for r in slots if r is not None]
        result.nothing_read = not any(r.input_sha256 for r in result.items)
        if not manifest.opened:
            result.manifest = None
    return result
