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
      (or read-only) disk does: it stops at the first failed write, naming the file.
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..errors import StillguardError
from ..files import WriteError, sha256_file
from ..images import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from .inputs import BatchItem, check_writable, collect, tagged
from .manifest import MANIFEST, Manifest, relative
from .outputs import save_protected
from .results import BatchEvent, BatchResult, ItemResult

log = logging.getLogger(__name__)


def run_hash(cfg: Any, keep_metadata: bool = False) -> str:
    """Hash of everything that changes the output bytes: the run config and ``keep_metadata``."""
    return hashlib.sha256(f"{cfg.hash()}|keep_metadata={bool(keep_metadata)}".encode()).hexdigest()


# ----------------------------------------------------------------------------- one image
def protect_file(
    item: BatchItem,
    cfg: Any,
    adapter: Any,
    loaded: LoadedImage,
    *,
    keep_metadata: bool = False,
    callback: Callable[[Any], None] | None = None,
    clean_stale: bool = True,
) -> ItemResult:
    """Protect one loaded input and write its PNG and sidecar atomically (no manifest).

    Args:
        item: input and output paths.
        cfg: a :class:`stillguard.app.config.RunConfig`.
        adapter: a loaded adapter.
        loaded: the input, read and decoded once (:func:`stillguard.images.load_image`).
        keep_metadata: copy the input's EXIF into the PNG.
        callback: forwarded to :func:`stillguard.protect`.
        clean_stale: forwarded to :func:`~stillguard.app.outputs.save_protected`.
    """
    from ..loop import protect

    t0 = time.perf_counter()
    chash = run_hash(cfg, keep_metadata)
    result = protect(loaded.tensor, adapter, callback=callback, **cfg.protect_kwargs())
    png = save_protected(
        result,
        item.output,
        source=loaded,
        keep_metadata=keep_metadata,
        clean_stale=clean_stale,
        extra={
            "input": dict(loaded.info),
            "alpha_reattached": loaded.alpha is not None,
            "metadata_kept": bool(keep_metadata),
            "config_hash": chash,
            "run_config": {
                **cfg.to_dict(),
                "description": cfg.summary(getattr(adapter, "is_real", None)),
            },
        },
    )
    return ItemResult(
        input=str(item.input),
        status="ok",
        output=str(png),
        sidecar=str(item.sidecar),
        input_sha256=loaded.sha256,
        output_sha256=sha256_file(png),
        config_hash=chash,
        seconds=round(time.perf_counter() - t0, 3),
        real_model=result.real_model,
    )


def _attempt(res: ItemResult, fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``None`` with the error recorded in ``res`` (one bad input must not stop a batch)."""
    try:
        return fn()
    except WriteError as e:
        if e.stops_batch:
            raise  # a full disk fails every next input too: stop at the first, with the path
        res.error = str(e)
    except StillguardError as e:
        res.error = str(e)
    except Exception as e:  # noqa: BLE001
        log.debug("failed on %s", res.input, exc_info=True)
        res.error = f"{type(e).__name__}: {e}"
    return None


def protect_path(
    item: BatchItem,
    cfg: Any,
    adapter: Any,
    *,
    keep_metadata: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    callback: Callable[[Any], None] | None = None,
) -> ItemResult:
    """Read ``item.input`` once, protect it, write its outputs (no manifest); errors -> ``failed``."""
    t0 = time.perf_counter()
    chash = run_hash(cfg, keep_metadata)
    res = ItemResult(input=str(item.input), status="failed", config_hash=chash)
    loaded = _attempt(res, lambda: load_image(item.input, max_pixels=max_pixels))
    if loaded is not None:
        res.input_sha256 = loaded.sha256
        job = lambda: protect_file(  # noqa: E731
            item, cfg, adapter, loaded, keep_metadata=keep_metadata, callback=callback
        )
        res = _attempt(res, job) or res
    res.seconds = res.seconds or round(time.perf_counter() - t0, 3)
    return res


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
) -> BatchResult:
    """Protect every input image into ``out_dir``, resuming from ``out_dir/manifest.jsonl``.

    Args:
        inputs: image files and folders.
        out_dir: output folder (created when the first input has been read).
        cfg: a :class:`stillguard.app.config.RunConfig`.
        adapter: a loaded adapter, or a zero-argument callable that loads it (called at most once,
            and only if some input needs protecting).
        callback: receives :class:`BatchEvent` progress.
        keep_metadata: copy each input's EXIF into its PNG.
        max_pixels: input size limit.

    Returns:
        A :class:`BatchResult`; ``exit_code`` is 1 if any input failed, 2 if none could be read.

    Raises:
        InputError: bad output folder or inputs (see :func:`stillguard.app.inputs.collect`); a
            model that cannot be loaded raises its own error and stops the batch.
    """
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
    with Manifest(out) as manifest:
        for i, item in enumerate(items):
            emit(BatchEvent("start", i, len(items), item.input))
            t0 = time.perf_counter()
            rel_out = relative(item.output, out)
            res = ItemResult(input=str(item.input), status="failed", config_hash=chash)
            loaded = _attempt(res, lambda item=item: load_image(item.input, max_pixels=max_pixels))
            if loaded is not None:
                manifest.open()  # lock, cut a partial line, remove stale temporaries
                res.input_sha256 = loaded.sha256
                if manifest.taken(rel_out, os.path.abspath(item.input), loaded.sha256):
                    item = tagged(item)  # an earlier run gave this name to another input
                    rel_out = relative(item.output, out)
                rec = manifest.done(loaded.sha256, chash, rel_out)
                if rec is not None:
                    res = skipped_result(rec, item, chash)
                else:
                    if not model:
                        model.append(adapter())  # a model that cannot load stops the batch

                    def step(ev: Any, i: int = i, item: BatchItem = item) -> None:
                        emit(
                            BatchEvent(
                                "step", i, len(items), item.input, ev.step, ev.steps, ev.loss
                            )
                        )

                    res = (
                        _attempt(
                            res,
                            lambda item=item, loaded=loaded, step=step: protect_file(
                                item,
                                cfg,
                                model[0],
                                loaded,
                                keep_metadata=keep_metadata,
                                callback=step,
                                clean_stale=False,  # done when the manifest opened
                            ),  # fmt: skip
                        )
                        or res
                    )
            res.seconds = res.seconds or round(time.perf_counter() - t0, 3)
            if res.status != "skipped":
                manifest.append(manifest_record(res, item, out, run_id))
            result.items.append(res)
            emit(BatchEvent("done", i, len(items), item.input, result=res))
        result.nothing_read = not any(r.input_sha256 for r in result.items)
        if not manifest.opened:
            result.manifest = None
    return result
