"""The driver of a bulk run: what every executor shares, so executors only schedule units of work.

One photo's walk::

    collect (.inputs) -> name / resume (.names, against the manifest)
        -> unit of work (.unit: read once, protect, save atomically) -> manifest line (here)

The driver collects the inputs and names their outputs, checks the output folder, holds the
manifest (its only writer), applies the naming and resume rule to each input (:meth:`Driver.decide`),
records each finished input (:meth:`Driver.finish`: the manifest line, fsync'd, then the ``done``
event) and builds the :class:`~.results.BatchResult` in input order. Where units run and in which
groups is the executor's business (:mod:`.local`, :mod:`.cluster`).
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from ..outputs import check_writable
from .inputs import collect
from .manifest import MANIFEST, Manifest, manifest_record
from .names import decide
from .results import BatchEvent, BatchResult, ItemResult
from .unit import run_hash


class Driver:
    """One run's plan, manifest and results; use as a context manager (closes the manifest).

    Args:
        inputs: image files and folders.
        out_dir: the output folder (created when the manifest opens).
        cfg: a :class:`stillguard.app.config.RunConfig`.
        keep_metadata: part of the run hash (it changes the output bytes).
        callback: receives every :class:`BatchEvent`.
        follow_symlinks: also follow links that lead out of an input folder
            (:func:`.inputs.collect`).

    Attributes:
        items: the inputs and their output paths, in input order; :meth:`decide` may tag a name.
        manifest: the output folder's :class:`~.manifest.Manifest`.
        config_hash: the run hash (:func:`~.unit.run_hash`).

    Raises:
        InputError: bad inputs or output folder (before anything is written).
    """

    def __init__(
        self,
        inputs: Iterable[str | os.PathLike[str]],
        out_dir: str | os.PathLike[str],
        cfg: Any,
        *,
        keep_metadata: bool = False,
        callback: Callable[[BatchEvent], None] | None = None,
        follow_symlinks: bool = False,
    ) -> None:
        self.out = Path(out_dir)
        self.ignored: list[Path] = []
        self.links: list[tuple[Path, str]] = []
        self.items = collect(inputs, self.out, self.ignored, links=self.links,
                             follow_symlinks=follow_symlinks)  # fmt: skip
        check_writable(self.out)
        self.config_hash = run_hash(cfg, keep_metadata)
        self.run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        self.manifest = Manifest(self.out)
        self.results: list[ItemResult | None] = [None] * len(self.items)
        self._emit = callback or (lambda event: None)

    def __enter__(self) -> Driver:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.manifest.__exit__(*exc)

    def event(self, kind: str, i: int, **fields: Any) -> None:
        """Emit a :class:`BatchEvent` of ``kind`` for input ``i``."""
        self._emit(BatchEvent(kind, i, len(self.items), self.items[i].input, **fields))

    def failed(self, i: int) -> ItemResult:
        """A ``failed`` result for input ``i``, to be filled with its error."""
        return ItemResult(str(self.items[i].input), "failed", config_hash=self.config_hash)

    def decide(self, i: int, input_sha256: Callable[[], str | None]) -> ItemResult | None:
        """Apply the naming and resume rule to input ``i`` (:func:`.names.decide`; the manifest
        must be open): its item may get a tagged name; returns its ``skipped`` result if done."""
        decision = decide(self.items[i], self.manifest, self.config_hash, input_sha256)
        self.items[i] = decision.item
        return None if decision.done is None else decision.skipped(self.config_hash)

    def finish(self, i: int, res: ItemResult, t0: float | None = None) -> None:
        """Record input ``i``'s result: its manifest line (not for a skipped input), then ``done``.

        ``t0`` (``time.perf_counter()`` when its work began) fills ``seconds`` if the unit did not.
        """
        res.config_hash = res.config_hash or self.config_hash
        if t0 is not None:
            res.seconds = res.seconds or round(time.perf_counter() - t0, 3)
        if res.status != "skipped":
            self.manifest.append(manifest_record(res, self.items[i].input, self.out, self.run_id))
        self.results[i] = res
        self.event("done", i, result=res)

    def result(self) -> BatchResult:
        """Every input's result in input order; ``manifest`` is ``None`` if it never opened."""
        items = [r for r in self.results if r is not None]
        return BatchResult(
            items=items,
            manifest=self.out / MANIFEST if self.manifest.opened else None,
            config_hash=self.config_hash,
            ignored=[str(p) for p in self.ignored],
            skipped_links=[{"path": str(p), "reason": why} for p, why in self.links],
            nothing_read=not any(r.input_sha256 for r in items),
        )
