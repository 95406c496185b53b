"""Several inputs of one size per forward/backward pass of a bulk job (``--batch-size N``).

:func:`protect_group` protects loaded inputs of one size with one
:func:`stillguard.loop.protect_batch` call and writes each one's PNG and sidecar
(:func:`stillguard.app.jobs.save_result`, the same helper as for one image); :class:`Pending`
gathers a batch's inputs into such groups while keeping memory bounded; :func:`protect_paths`
reads and protects one group of files (a Ray worker's job).

Choices:
    * each image gets what it would get alone (own random stream seeded with the run's seed, own
      loss and sign step): only float rounding of batched kernels differs (a few pixels by one
      8-bit level), so ``batch_size`` is not part of the run hash and a run resumed with another
      batch size skips finished inputs; the sidecar's ``config.batch_size`` says how many images
      shared the forward passes;
    * the size of a group is the size the loop sees: the loaded tensor's ``(H, W)`` (after the
      EXIF rotation), not the file header's;
    * a group that fails as a whole (for example out of GPU memory) is protected again one image
      at a time, so a failure is only ever the failing input's own; a failed write of one file is
      that input's failure, a full disk stops the batch (:class:`~stillguard.files.WriteError`);
    * memory: at most ``2 * batch_size`` decoded inputs wait; a group is protected when it is full,
      the oldest waiting group when that bound is reached, and every partial group at the end.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

from ..errors import InputError, StillguardError
from ..images import DEFAULT_MAX_PIXELS, LoadedImage, load_image
from .inputs import BatchItem
from .jobs import attempt, protect_file, run_hash, save_result
from .results import ItemResult

log = logging.getLogger(__name__)

#: ``callback(k, event)``: a :class:`~stillguard.loop.ProgressEvent` for the group's ``k``-th input
GroupCallback = Callable[[int, Any], None]


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` as an int >= 1.

    Raises:
        InputError: not a whole number >= 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(
            f"batch size {batch_size!r} is not a whole number >= 1: give how many images of one "
            "size to protect per forward/backward pass (1: one at a time)"
        )
    return batch_size


@dataclass
class Waiting:
    """A read input waiting for its group: its index in the run, paths, pixels, when it started."""

    index: int
    item: BatchItem
    loaded: LoadedImage
    t0: float


class Pending:
    """Inputs waiting to be protected, grouped by size, ``batch_size`` at most a group.

    :meth:`add` returns the groups to protect now: the input's group when it is full, else the
    group waiting longest when ``2 * batch_size`` inputs wait; :meth:`drain` returns the rest.
    """

    def __init__(self, batch_size: int) -> None:
        self.batch_size = check_batch_size(batch_size)
        self.limit = 2 * self.batch_size
        self.groups: dict[tuple[int, int], list[Waiting]] = {}  # insertion order: oldest first

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def add(self, entry: Waiting) -> list[list[Waiting]]:
        key = (int(entry.loaded.tensor.shape[-2]), int(entry.loaded.tensor.shape[-1]))
        group = self.groups.setdefault(key, [])
        group.append(entry)
        if len(group) >= self.batch_size:
            return [self.groups.pop(key)]
        if len(self) >= self.limit:
            return [self.groups.pop(next(iter(self.groups)))]
        return []

    def drain(self) -> Iterator[list[Waiting]]:
        while self.groups:
            yield self.groups.pop(next(iter(self.groups)))


def protect_group(
    entries: Sequence[tuple[BatchItem, LoadedImage]],
    cfg: Any,
    adapter: Any,
    *,
    keep_metadata: bool = False,
    callback: GroupCallback | None = None,
    clean_stale: bool = True,
) -> list[ItemResult]:
    """Protect loaded inputs with one :func:`~stillguard.loop.protect_batch` call; write each.

    Args:
        entries: ``(item, loaded)`` pairs, best of one size (others are batched by size apart).
        cfg: a :class:`stillguard.app.config.RunConfig`.
        adapter: a loaded adapter (or an ensemble's list).
        keep_metadata: copy each input's EXIF into its PNG.
        callback: ``callback(k, event)`` after every step, for each input ``k`` of the pass.
        clean_stale: forwarded to :func:`~stillguard.app.outputs.save_protected`.

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
        job = lambda item=item, loaded=loaded, step=step: protect_file(  # noqa: E731
            item, cfg, adapter, loaded, keep_metadata=keep_metadata, callback=step,
            clean_stale=clean_stale,
        )  # fmt: skip
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
    from ..loop import protect_batch

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
    """Read each input once, protect the readable ones as one group, write their outputs.

    Returns one :class:`ItemResult` per item, in order; an unreadable input is ``failed`` alone.
    """
    chash = run_hash(cfg, keep_metadata)
    results: list[ItemResult | None] = [None] * len(items)
    entries: list[tuple[int, BatchItem, LoadedImage]] = []
    for k, item in enumerate(items):
        t0 = time.perf_counter()
        res = ItemResult(input=str(item.input), status="failed", config_hash=chash)
        loaded = attempt(res, lambda item=item: load_image(item.input, max_pixels=max_pixels))
        if loaded is None:
            res.seconds = round(time.perf_counter() - t0, 3)
            results[k] = res
        else:
            entries.append((k, item, loaded))
    if entries:
        done = protect_group(
            [(item, loaded) for _, item, loaded in entries],
            cfg,
            adapter,
            keep_metadata=keep_metadata,
        )
        for (k, _, _), res in zip(entries, done, strict=True):
            results[k] = res
    return [r for r in results if r is not None]
