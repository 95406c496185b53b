"""What a batch protects: input files and folders expanded into a run's items.

Choices:
    * directories are walked recursively in sorted order (hidden entries, ``*.protected.png`` files
      and the output folder itself are skipped; a directory reached twice, e.g. through a symlink
      loop, is walked once); files found inside a directory keep their sub-folder under ``OUT``;
    * inside folders, a file is taken when its name ends in an image extension Pillow can open
      (:func:`stillguard.images.is_image_name`: AVIF, HEIC with pillow-heif, ...); the others are
      returned as ``ignored`` so the user sees them; files named explicitly are always taken (the
      content decides, on load, as in single-file mode);
    * a file given twice (or reached twice) is protected once;
    * output names are given by :mod:`.names` (the one naming rule);
    * nothing here reads an input file: this is names and folders only.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ...errors import InputError
from ...images import is_image_name
from .names import SUFFIX, BatchItem, assign

log = logging.getLogger(__name__)


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


def collect(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    ignored: list[Path] | None = None,
) -> list[BatchItem]:
    """Expand folders; name each input's outputs (:func:`.names.assign`).

    Files inside folders that are not image names are appended to ``ignored`` (when given).

    Raises:
        InputError: no inputs, ``out_dir`` is a file, or an output would replace an input.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give a folder for the outputs")
    found: list[tuple[Path, Path]] = []  # (input, its sub-folder under out)
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
                found.append((f, rel))
    if not found:
        why = (
            f" ({len(skipped)} other files, e.g. {skipped[0].name}: not image names)"
            if skipped
            else ""
        )
        raise InputError(f"no input images found{why}; pass image files or folders that hold some")
    return assign(found, out)
