"""Where each input's outputs go, and whether it is already done: the one naming and resume rule.

Every executor (the local one, Ray) and nothing else decides names here, so the same folders give
the same file names whichever way they are run.

Rules:
    * an input's outputs are ``OUT/[SUB/]STEM.protected.png`` and ``.protected.json``; ``SUB`` is
      its sub-folder when it was found inside a folder given as input (:func:`assign`);
    * **in one run**: when two inputs would get the same output name (case-insensitively), each of
      them gets the first 8 hex digits of the SHA-1 of its absolute path appended to the stem
      (:func:`tagged`): stable from run to run, distinct for distinct paths;
    * **across runs (the name-taken rule)**: an output name belongs to the input of its last ``ok``
      manifest line; another input (another path AND other content) gets its tagged name instead
      (two memory cards that both hold ``IMG_0001.jpg``, protected into one folder one after the
      other, keep two outputs). The same path with new content, or the same content under another
      path, keeps the name (an edited photo replaces its own output);
    * **resume**: an input is done when an ``ok`` line has its SHA-256, the run's config hash and
      its (final) output name, and that output is intact (:meth:`.manifest.Manifest.done`);
    * an output that would replace an input is refused before anything runs.

:func:`decide` applies the two manifest rules. It needs the input's SHA-256 only when the manifest
gives the output name to someone: the local executor has it from its one read, the Ray driver
hashes such inputs (and only those; the worker reads the rest).
"""

from __future__ import annotations

import hashlib
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...names import shown_name
from .manifest import Manifest, relative
from .results import ItemResult

SUFFIX = ".protected.png"


@dataclass
class BatchItem:
    """One input and where its outputs go."""

    input: Path
    output: Path
    sidecar: Path


def tagged(item: BatchItem) -> BatchItem:
    """The same input with its output stem tagged by its absolute path (a collision-free name)."""
    tag = hashlib.sha1(os.path.abspath(item.input).encode()).hexdigest()[:8]
    output = item.output.with_name(f"{item.input.stem}-{tag}{SUFFIX}")
    return BatchItem(item.input, output, output.with_suffix(".json"))


def assign(found: Sequence[tuple[Path, Path]], out: Path) -> list[BatchItem]:
    """The items of one run: ``found`` holds ``(input, sub-folder under out)`` pairs, in order.

    Raises:
        InputError: an output (PNG or sidecar) would be one of the inputs.
    """
    rels = [sub / (f.stem + SUFFIX) for f, sub in found]
    count: dict[str, int] = {}
    for rel in rels:
        count[str(rel).lower()] = count.get(str(rel).lower(), 0) + 1
    items = []
    for (f, _), rel in zip(found, rels, strict=True):
        item = BatchItem(f, out / rel, (out / rel).with_suffix(".json"))
        items.append(tagged(item) if count[str(rel).lower()] > 1 else item)
    inputs_real = {os.path.realpath(f) for f, _ in found}
    for it in items:
        for o in (it.output, it.sidecar):
            if os.path.realpath(o) in inputs_real:
                raise InputError(
                    f"{shown_name(o)}: the output path is an input; choose another output folder"
                )
    return items


@dataclass
class Decision:
    """What the manifest says of one input: its final item, and its ``ok`` line when it is done."""

    item: BatchItem
    done: dict[str, Any] | None = None

    def skipped(self, config_hash: str) -> ItemResult:
        """The result of an input found done (``done`` is its ``ok`` line)."""
        rec = self.done or {}
        return ItemResult(
            input=str(self.item.input),
            status="skipped",
            output=str(self.item.output),
            sidecar=str(self.item.sidecar),
            input_sha256=rec.get("input_sha256"),
            output_sha256=rec.get("output_sha256"),
            config_hash=config_hash,
            real_model=rec.get("real_model"),
        )


def decide(
    item: BatchItem,
    manifest: Manifest,
    config_hash: str,
    input_sha256: Callable[[], str | None],
) -> Decision:
    """Apply the name-taken and resume rules to ``item`` (the manifest must be open).

    Args:
        item: as :func:`assign` named it.
        manifest: the output folder's manifest.
        config_hash: the run's config hash.
        input_sha256: the input's SHA-256, called only when an ``ok`` line gives the output name
            to some input; ``None`` when the input cannot be read (its unit of work reports why).
    """
    rel = relative(item.output, manifest.out)
    if not manifest.owner(rel):
        return Decision(item)  # nobody's name yet: to protect, under it
    sha = input_sha256()
    if sha is None:
        return Decision(item)
    if manifest.taken(rel, os.path.abspath(item.input), sha):
        item = tagged(item)  # an earlier run gave this name to another input
        rel = relative(item.output, manifest.out)
    return Decision(item, manifest.done(sha, config_hash, rel))
