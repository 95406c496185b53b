"""The unit of work: an input read once, protected, saved atomically; its manifest line returned.

Every way of protecting a file calls this module: the local executor and the Ray worker (through
:func:`protect_group`, one input or several of one size per pass), the single-file command, the
demo and the web page (:func:`protect_one`). So an output's PNG, sidecar and manifest line are
the same whichever way it was made. A unit never writes the manifest (the driver does).

Steps of one input:
    1. **read** once (:func:`read`: bytes, hash, checks, decode - :func:`stillguard.images.load_image`);
       the local executor reads before it asks :mod:`.names` for the final name, the Ray worker
       reads here (:func:`protect_paths`);
    2. **protect** (:func:`stillguard.loop.protect`; a group: :func:`stillguard.loop.protect_batch`);
    3. **save** the PNG, then its sidecar, each atomically (:func:`save_result`, through
       :func:`stillguard.app.outputs.save_protected`), under the final name;
    4. **return** an :class:`~.results.ItemResult` (the manifest line, before paths are made
       relative).

Choices of a group (``--batch-size N``):
    * each image gets what it would get alone (own random stream seeded with the run's seed, own
      loss and sign step): only float rounding of batched kernels differs (a few pixels by one
      8-bit level), so ``batch_size`` is not part of the run hash (:func:`run_hash`); the
      sidecar's ``config.batch_size`` says how many images shared the forward passes;
    * a group that fails as a whole (for example out of GPU memory) is protected again one image at
      a time, so a failure is only ever the failing input's own; a failed write of one file is that
      input's failure, a full disk stops the batch (:class:`~stillguard.files.WriteError`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

from ...errors import StillguardError
from ...files import WriteError, sha256_file
from ...images import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from ..outputs import save_protected
from .names import BatchItem
from .results import ItemResult

log = logging.getLogger(__name__)

#: ``callback(k, event)``: a :class:`~stillguard.loop.ProgressEvent` for the group's ``k``-th input
GroupCallback = Callable[[int, Any], None]


class Done(NamedTuple):
    """One protected input: its manifest line and the in-memory result (for a front that shows it)."""

    result: ItemResult
    protected: Any  # stillguard.protected.Protected


def run_hash(cfg: Any, keep_metadata: bool | str = False) -> str:
    """Hash of everything that changes the output bytes: the run config and ``keep_metadata``."""
    from ...metadata import label  # "True+gps" when GPS is kept: a different output

    return hashlib.sha256(f"{cfg.hash()}|keep_metadata={label(keep_metadata)}".encode()).hexdigest()


def read(path: str | os.PathLike[str], max_pixels: int = DEFAULT_MAX_PIXELS) -> LoadedImage:
    """The input, read, checked and decoded once (raises the input's own error)."""
    return load_image(path, max_pixels=max_pixels)


def save_result(
    item: BatchItem,
    cfg: Any,
    adapter: Any,
    loaded: LoadedImage,
    result: Any,
    *,
    keep_metadata: bool = False,
    clean_stale: bool = True,
    extra: dict[str, Any] | None = None,
) -> ItemResult:
    """Write one protected result's PNG and sidecar atomically; its :class:`ItemResult`.

    ``extra`` entries replace or add sidecar entries (the web page names the upload instead of the
    server's temporary path). ``seconds`` of the result: the protection's share plus the save.
    """
    t0 = time.perf_counter()
    chash = run_hash(cfg, keep_metadata)
    facts = {
        "input": dict(loaded.info),
        "alpha_reattached": loaded.alpha is not None,
        "metadata_kept": bool(keep_metadata),
        "config_hash": chash,
        "run_config": {**cfg.to_dict(), "description": cfg.summary(getattr(adapter, "is_real", None))},
    }  # fmt: skip
    png = save_protected(
        result,
        item.output,
        source=loaded,
        keep_metadata=keep_metadata,
        clean_stale=clean_stale,
        extra={**facts, **(extra or {})},
    )
    return ItemResult(
        input=str(item.input),
        status="ok",
        output=str(png),
        sidecar=str(item.sidecar),
        input_sha256=loaded.sha256,
        output_sha256=sha256_file(png),
        config_hash=chash,
        seconds=round(result.seconds + time.perf_counter() - t0, 3),
        real_model=result.real_model,
    )


def protect_one(
    item: BatchItem,
    cfg: Any,
    adapter: Any,
    loaded: LoadedImage,
    *,
    keep_metadata: bool = False,
    callback: Callable[[Any], None] | None = None,
    clean_stale: bool = True,
    extra: dict[str, Any] | None = None,
) -> Done:
    """Protect one read input and write its PNG and sidecar atomically (no manifest).

    Args:
        item: input and output paths (the final names).
        cfg: a :class:`stillguard.app.config.RunConfig`.
        adapter: a loaded adapter (or an ensemble's list).
        loaded: the input, read once (:func:`read`).
        keep_metadata: copy the input's EXIF into the PNG.
        callback: forwarded to :func:`stillguard.protect` (may raise to stop: nothing is written).
        clean_stale: forwarded to :func:`~stillguard.app.outputs.save_protected`.
        extra: sidecar entries (see :func:`save_result`).
    """
    from ...loop import protect

    t0 = time.perf_counter()
    result = protect(loaded.tensor, adapter, callback=callback, **cfg.protect_kwargs())
    res = save_result(item, cfg, adapter, loaded, result, keep_metadata=keep_metadata,
                      clean_stale=clean_stale, extra=extra)  # fmt: skip
    res.seconds = round(time.perf_counter() - t0, 3)
    return Done(res, result)


def attempt(res: ItemResult, fn: Callable[[], Any]) -> Any:
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


def protect_group(
    entries: Sequence[tuple[BatchItem, LoadedImage]],
    cfg: Any,
    adapter: Any,
    *,
    keep_metadata: bool = False,
    callback: GroupCallback | None = None,
    clean_stale: bool = True,
) -> list[ItemResult]:
    """Protect read inputs with one :func:`~stillguard.loop.protect_batch` call; write each.

    Args:
        entries: ``(item, loaded)`` pairs, best of one size (:mod:`.groups`); one pair is
            protected alone (:func:`protect_one`).
        cfg, adapter, keep_metadata, clean_stale: as for :func:`protect_one`.
        callback: ``callback(k, event)`` after every step, for each input ``k`` of the pass.

    Returns:
        One :class:`ItemResult` per entry, in order (``failed`` with the error for those that
        failed; no manifest is written).

    Raises:
        WriteError: a full (or read-only) disk, which stops a batch.
    """
    chash = run_hash(cfg, keep_metadata)
    results = [
        ItemResult(str(item.input), "failed", config_hash=chash, input_sha256=loaded.sha256)
        for item, loaded in entries
    ]
    if len(entries) > 1:
        protected = _protect_together(entries, cfg, adapter, callback)
        if protected is not None:
            for k, ((item, loaded), p) in enumerate(zip(entries, protected, strict=True)):
                job = lambda item=item, loaded=loaded, p=p: save_result(  # noqa: E731
                    item, cfg, adapter, loaded, p, keep_metadata=keep_metadata,
                    clean_stale=clean_stale,
                )  # fmt: skip
                results[k] = attempt(results[k], job) or results[k]
                results[k].seconds = results[k].seconds or round(p.seconds, 3)
            return results
    for k, (item, loaded) in enumerate(entries):  # one image, or a group that failed as a whole
        t0 = time.perf_counter()
        step = None if callback is None else (lambda ev, k=k: callback(k, ev))
        job = lambda item=item, loaded=loaded, step=step: protect_one(  # noqa: E731
            item, cfg, adapter, loaded, keep_metadata=keep_metadata, callback=step,
            clean_stale=clean_stale,
        ).result  # fmt: skip
        results[k] = attempt(results[k], job) or results[k]
        results[k].seconds = results[k].seconds or round(time.perf_counter() - t0, 3)
    return results


def _protect_together(
    entries: Sequence[tuple[BatchItem, LoadedImage]],
    cfg: Any,
    adapter: Any,
    callback: GroupCallback | None,
) -> list[Any] | None:
    """The group's :class:`~stillguard.loop.Protected` results, or ``None`` if the pass failed."""
    from ...loop import protect_batch

    def step(ev: Any) -> None:
        for k in ev.images:  # positions in this group
            callback(k, ev)  # type: ignore[misc]

    try:
        return protect_batch(
            [loaded.tensor for _, loaded in entries],
            adapter,
            batch_size=len(entries),
            callback=None if callback is None else step,
            **cfg.protect_kwargs(),
        )
    except StillguardError:
        pass  # a setting or input problem: each input reports it alone
    except Exception as e:  # noqa: BLE001 - e.g. out of memory for the whole batch
        log.warning(
            "protecting %d images together failed (%s: %s); protecting them one at a time "
            "(a smaller --batch-size may avoid this)",
            len(entries), type(e).__name__, e,
        )  # fmt: skip
    return None


def protect_paths(
    items: Sequence[BatchItem],
    cfg: Any,
    adapter: Any,
    *,
    keep_metadata: bool = False,
    max_pixels: int = DEFAULT_MAX_PIXELS,
) -> list[ItemResult]:
    """Read each input once, protect the readable ones as one group, write their outputs (a Ray
    worker's job). One :class:`ItemResult` per item, in order; an unreadable input fails alone."""
    chash = run_hash(cfg, keep_metadata)
    results: list[ItemResult | None] = [None] * len(items)
    entries: list[tuple[int, BatchItem, LoadedImage]] = []
    for k, item in enumerate(items):
        t0 = time.perf_counter()
        res = ItemResult(input=str(item.input), status="failed", config_hash=chash)
        loaded = attempt(res, lambda item=item: read(item.input, max_pixels))
        if loaded is None:
            res.seconds = round(time.perf_counter() - t0, 3)
            results[k] = res
        else:
            entries.append((k, item, loaded))
    if entries:
        done = protect_group([(item, loaded) for _, item, loaded in entries], cfg, adapter,
                             keep_metadata=keep_metadata)  # fmt: skip
        for (k, _, _), res in zip(entries, done, strict=True):
            results[k] = res
    return [r for r in results if r is not None]
