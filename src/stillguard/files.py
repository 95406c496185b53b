"""Files written by stillguard: atomic writes, JSON, 8-bit PNGs and hashes.

Every output is written atomically (temporary file in the same folder, fsync, ``os.replace``), so a
kill never leaves a half-written file under its final name; PNGs are never written over the input.
Used by every layer that writes (the app's outputs and batches, measurement reports).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import io as _io
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import InputError, StillguardError
from .images import LoadedImage
from .metadata import exif_to_write
from .names import shown_name
from .tensors import to_uint8


class WriteError(StillguardError):
    """An output could not be written (disk full, quota, read-only disk, ...).

    Attributes:
        path: the file that could not be written.
        errno: the OS error number (``errno.ENOSPC`` for a full disk).
    """

    def __init__(self, path: str | os.PathLike[str], err: OSError) -> None:
        self.path, self.errno = Path(path), err.errno
        hint = {
            errno.ENOSPC: "free some space or choose another output folder, then rerun",
            errno.EDQUOT: "your disk quota is used up; free some space, then rerun",
            errno.EROFS: "the disk is read-only; choose another output folder",
        }.get(err.errno or 0, "check the disk and the folder's permissions")
        super().__init__(f"{shown_name(path)}: cannot write it ({err.strerror or err}); {hint}")

    @property
    def stops_batch(self) -> bool:
        """True when the next outputs would fail the same way (full disk or quota, read-only)."""
        return self.errno in (errno.ENOSPC, errno.EDQUOT, errno.EROFS)


def _lock(fd: int, wait: bool = True) -> bool:
    """Take an exclusive ``flock`` on ``fd`` (released when the process ends, even on SIGKILL)."""
    try:
        import fcntl
    except ImportError:  # pragma: no cover - not POSIX: no lock, every temporary counts as stale
        return True
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        return True
    except OSError:
        return False


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    r"""Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``.

    The temporary ``.NAME.XXXXXXXX.tmp`` is ``flock``\ ed while it is written, so
    :func:`remove_stale_temporaries` can tell one left by a killed run from one being written.

    Raises:
        InputError: ``path`` is a folder, or its folder cannot be created.
        WriteError: the write itself failed (disk full, ...); no temporary is left behind.
    """
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{shown_name(path)}: is a directory; give a file name for the output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise InputError(
            f"{shown_name(path.parent)}: cannot write the output there ({e.strerror or e}); choose a writable folder"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            _lock(f.fileno())
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, path)  # still locked: a cleaner never removes it under our feet
    except BaseException as e:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(e, OSError):
            raise WriteError(path, e) from None
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def is_temporary_of(name: str, output: str) -> bool:
    """Is ``name`` a temporary :func:`atomic_write_bytes` makes for the file ``output``?"""
    prefix = f".{output}."
    return name.startswith(prefix) and name.endswith(".tmp") and len(name) == len(prefix) + 12


def remove_stale_temporaries(folder: Path, match: Callable[[str], bool]) -> list[Path]:
    """Delete the temporaries (``.*.tmp`` whose name passes ``match``) left by killed runs.

    One still locked by a live writer is kept. Returns the removed paths.
    """
    removed = []
    try:
        entries = list(os.scandir(folder))
    except OSError:
        return []
    for entry in entries:
        n = entry.name
        if not (n.startswith(".") and n.endswith(".tmp")):
            continue
        if not match(n):
            continue
        try:
            fd = os.open(entry.path, os.O_RDONLY | getattr(os, "O_NOFOLLOW", 0))
        except OSError:
            continue
        try:
            if _lock(fd, wait=False):
                os.unlink(entry.path)
                removed.append(Path(entry.path))
        except OSError:
            pass
        finally:
            os.close(fd)
    return removed


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (non-JSON values are written with ``str``)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write_bytes(path, text.encode())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def save_png(image: Any, path: str | os.PathLike[str], **options: Any) -> Path:
    """Save an image as an 8-bit PNG, atomically, never over the input.

    ``options`` are those of :func:`encode_png` (``metadata``, ``keep_metadata``, ``alpha``,
    ``source``). Returns the written path.
    """
    return atomic_write_bytes(path, encode_png(image, path, **options))


def encode_png(
    image: Any,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    keep_metadata: bool | str = False,
    alpha: np.ndarray | None = None,
    source: LoadedImage | None = None,
) -> bytes:
    """The bytes of an 8-bit PNG for ``path`` (checked: a ``.png`` name, never the input itself).

    Args:
        image: float tensor in [0,1] or uint8 array (see :func:`to_uint8`).
        path: output file; must end in ``.png``; parent folders are created.
        metadata: text chunks to write (values that are not strings are JSON-encoded).
        keep_metadata: ``True`` copies the source's EXIF without GPS and orientation,
            :data:`stillguard.metadata.KEEP_GPS` with GPS; default (``False``) strips all metadata.
        alpha: uint8 ``(H, W)`` alpha to attach; defaults to ``source.alpha``.
        source: the loaded input; the output is refused if it would replace that file.

    Shape:
        ``image``: ``(1, 3, H, W)`` / ``(3, H, W)`` float, or ``(H, W, C)`` uint8; alpha ``(H, W)``.
    """
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(
            f"{shown_name(path)}: the output is a PNG; give a file name ending in .png"
        )
    if source is not None and _same_file(path, source.path):
        raise InputError(
            f"{shown_name(path)}: the output would overwrite the input; choose another output path"
        )
    arr = to_uint8(image)
    if alpha is None and source is not None:
        alpha = source.alpha
    if alpha is not None:
        alpha = np.asarray(alpha, dtype=np.uint8)
        if alpha.shape != arr.shape[:2]:
            raise InputError(f"alpha of shape {alpha.shape} does not match image {arr.shape[:2]}")
        rgb = arr[..., :3] if arr.shape[2] >= 3 else np.repeat(arr, 3, axis=2)
        arr = np.concatenate([rgb, alpha[..., None]], axis=2)
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[arr.shape[2]]
    img = Image.fromarray(arr[..., 0] if mode == "L" else arr, mode=mode)
    pnginfo = PngInfo()
    for key, value in (metadata or {}).items():
        pnginfo.add_text(
            str(key), value if isinstance(value, str) else json.dumps(value, default=str)
        )
    kwargs: dict[str, Any] = {"pnginfo": pnginfo}
    if keep_metadata:
        if source is None:
            raise InputError("keep_metadata needs the source image (pass source=loaded_image)")
        exif = exif_to_write(source.exif, keep_metadata)  # GPS only with KEEP_GPS
        if exif:
            kwargs["exif"] = exif
    buf = _io.BytesIO()
    img.save(buf, format="PNG", **kwargs)
    return buf.getvalue()


def sha256_bytes(data: bytes) -> str:
    """Hex SHA-256 of some bytes."""
    return hashlib.sha256(data).hexdigest()


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
