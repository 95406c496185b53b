"""What a batch protects: input files and folders expanded into a run's items.

Choices:
    * directories are walked recursively in sorted order (hidden entries, ``*.protected.png`` files
      and the output folder itself are skipped; a directory reached twice, e.g. through a symlink
      loop, is walked once); files found inside a directory keep their sub-folder under ``OUT``;
    * **links** inside a folder given as input: one that leads out of that folder (to a file or a
      folder, absolute or relative, directly or through other links; a broken one by where it
      points) is skipped and reported with :data:`OUTSIDE`, unless ``follow_symlinks``: a folder
      of photos is no way to make stillguard open ``/etc/passwd`` or a secret elsewhere. Links to
      files and folders inside it are followed as before (a file reached twice is protected once).
      A loop of links never reaches a file: skipped, reported with :data:`LOOP`, followed or not.
      A link named on the command line is taken (the user named it);
    * inside folders, a file is taken when its name ends in an image extension Pillow can open
      (:func:`stillguard.images.is_image_name`: AVIF, HEIC with pillow-heif, ...); the others are
      returned as ``ignored`` so the user sees them; files named explicitly are always taken (the
      content decides, on load, as in single-file mode);
    * a file given twice (or reached twice) is protected once;
    * output names are given by :mod:`.names` (the one naming rule);
    * nothing here reads an input file: this is names and folders only;
    * names in messages go through :func:`stillguard.names.shown_name` (escaped).
"""

from __future__ import annotations

import errno
import logging
import os
from collections.abc import Iterable, Iterator
from pathlib import Path

from ...errors import InputError
from ...images import is_image_name
from ...names import shown_name
from .names import SUFFIX, BatchItem, assign

log = logging.getLogger(__name__)


#: why a link inside an input folder was skipped
OUTSIDE = "a link to outside the folder"
LOOP = "a loop of links"


def _link_problem(link: Path, base: str, follow: bool) -> str | None:
    """Why the link ``link`` inside the folder whose real path is ``base`` is not taken, if so."""
    try:
        real = os.path.realpath(link, strict=True)
    except OSError as e:
        if e.errno == errno.ELOOP:
            return LOOP
        real = os.path.realpath(link)  # broken: judged by where it points (its unit reports it)
    inside = os.path.commonpath([real, base]) == base
    return None if inside or follow else OUTSIDE


def _walk(
    root: Path, skip: Path | None, ignored: list[Path], links: list[tuple[Path, str]], follow: bool
) -> Iterator[Path]:
    base = os.path.realpath(root)
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
            log.warning("skipping folder %s: %s", shown_name(folder), e.strerror or e)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            p = Path(entry.path)
            why = _link_problem(p, base, follow) if _is_link(entry) else None
            if why:
                links.append((p, why))
                continue
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


def _is_link(entry: os.DirEntry[str]) -> bool:
    try:
        return entry.is_symlink()
    except OSError:
        return False


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def collect(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    ignored: list[Path] | None = None,
    *,
    links: list[tuple[Path, str]] | None = None,
    follow_symlinks: bool = False,
) -> list[BatchItem]:
    """Expand folders; name each input's outputs (:func:`.names.assign`).

    Args:
        inputs: image files and folders.
        out_dir: the output folder (skipped when it lies inside an input folder).
        ignored: receives the files inside folders that are not image names.
        links: receives ``(link, why)`` for each link inside a folder that was skipped
            (:data:`OUTSIDE`, :data:`LOOP`).
        follow_symlinks: also follow links that lead out of their folder.

    Raises:
        InputError: no inputs, ``out_dir`` is a file, or an output would replace an input.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(
            f"{shown_name(out)}: exists and is not a folder; give a folder for the outputs"
        )
    found: list[tuple[Path, Path]] = []  # (input, its sub-folder under out)
    other = ignored if ignored is not None else []
    skipped = links if links is not None else []
    seen: set[str] = set()
    for raw in inputs:
        p = Path(raw)
        pairs = (
            [(f, f.relative_to(p).parent) for f in _walk(p, out, other, skipped, follow_symlinks)]
            if p.is_dir()
            else [(p, Path())]
        )
        for f, rel in pairs:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                found.append((f, rel))
    if not found:
        raise InputError(f"no input images found{_why_none(other, skipped)}; pass image files or "
                         "folders that hold some")  # fmt: skip
    return assign(found, out)


def _why_none(other: list[Path], links: list[tuple[Path, str]]) -> str:
    """What the folders held instead of photos, for the "no input images" error."""
    why = []
    if other:
        n = len(other)
        why.append(f"{n} other file{'s' * (n > 1)}, e.g. {shown_name(other[0].name)}: not an "
                   "image name")  # fmt: skip
    out = [p for p, reason in links if reason == OUTSIDE]
    if out:
        n = len(out)
        why.append(f"{n} link{'s' * (n > 1)} to outside the folder, e.g. {shown_name(out[0])}: "
                   "skipped (--follow-symlinks follows them)")  # fmt: skip
    return f" ({'; '.join(why)})" if why else ""
