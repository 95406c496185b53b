"""What a batch protects and where each output goes.

Choices:
    * directories are walked recursively in sorted order (hidden entries, ``*.protected.png`` files
      and the output folder itself are skipped; a directory reached twice, e.g. through a symlink
      loop, is walked once); files found inside a directory keep their sub-folder under ``OUT``;
    * inside folders, a file is taken when its name ends in an image extension Pillow can open
      (:func:`stillguard.images.is_image_name`: AVIF, HEIC with pillow-heif, ...); the others are
      returned as ``ignored`` so the user sees them; files named explicitly are always taken (the
      content decides, on load, as in single-file mode);
    * when two inputs would get the same output name (case-insensitively), each of them gets the
      first 8 hex digits of the SHA-1 of its absolute path appended to the stem (:func:`tagged`);
      the batch runner does the same when the manifest says an earlier run gave that name to
      another input (another path with other content), so outputs never overwrite each other;
    * nothing here reads an input file: planning is names and folders only.
"""

from __future__ import annotations

import hashlib
import logging
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import InputError
from ..images import is_image_name

log = logging.getLogger(__name__)

SUFFIX = ".protected.png"


@dataclass
class BatchItem:
    """One input and where its outputs go."""

    input: Path
    output: Path
    sidecar: Path


def _walk(root: Path, skip: Path | None, ignored: list[Path]) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            log.warning("skipping folder %s: %s", folder, e.strerror or e)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            p = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if skip is None or not _same(p, skip):
                    subdirs.append(p)
            elif p.name.endswith(SUFFIX):
                continue
            elif is_image_name(p):
                yield p
            else:
                ignored.append(p)
        stack.extend(reversed(subdirs))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def tagged(item: BatchItem) -> BatchItem:
    """The same input with its output stem tagged by its absolute path (a collision-free name)."""
    tag = hashlib.sha1(os.path.abspath(item.input).encode()).hexdigest()[:8]
    output = item.output.with_name(f"{item.input.stem}-{tag}{SUFFIX}")
    return BatchItem(item.input, output, output.with_suffix(".json"))


def collect(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    ignored: list[Path] | None = None,
) -> list[BatchItem]:
    """Expand folders and assign output paths (see the module docstring for naming).

    Files inside folders that are not image names are appended to ``ignored`` (when given).

    Raises:
        InputError: no inputs, ``out_dir`` is a file, or an output would replace an input.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give a folder for the outputs")
    found: list[tuple[Path, Path]] = []  # (input, output relative to out)
    skipped = ignored if ignored is not None else []
    seen: set[str] = set()
    for raw in inputs:
        p = Path(raw)
        pairs = (
            [(f, f.relative_to(p).parent) for f in _walk(p, out, skipped)]
            if p.is_dir()
            else [(p, Path())]
        )
        for f, rel in pairs:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                found.append((f, rel / (f.stem + SUFFIX)))
    if not found:
        why = (
            f" ({len(skipped)} other files, e.g. {skipped[0].name}: not image names)"
            if skipped
            else ""
        )
        raise InputError(f"no input images found{why}; pass image files or folders that hold some")
    names: dict[str, int] = {}
    for _, rel in found:
        names[str(rel).lower()] = names.get(str(rel).lower(), 0) + 1
    items = []
    for f, rel in found:
        item = BatchItem(f, out / rel, (out / rel).with_suffix(".json"))
        items.append(tagged(item) if names[str(rel).lower()] > 1 else item)
    inputs_real = {os.path.realpath(f) for f, _ in found}
    for it in items:
        for o in (it.output, it.sidecar):
            if os.path.realpath(o) in inputs_real:
                raise InputError(f"{o}: the output path is an input; choose another output folder")
    return items


def check_writable(folder: str | os.PathLike[str]) -> None:
    """Refuse an output folder that cannot be created or written, before any work is done."""
    path = Path(os.path.abspath(folder))
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(
            f"{folder}: cannot create the output folder ({probe} is a file); choose another"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{folder}: the output folder is not writable ({probe}); choose another")
