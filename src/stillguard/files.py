"""Files written by stillguard: atomic writes, JSON, 8-bit PNGs and hashes.

Every output is written atomically (temporary file in the same folder, fsync, ``os.replace``), so a
kill never leaves a half-written file under its final name; PNGs are never written over the input.
Used by every layer that writes (the app's outputs and batches, measurement reports).
"""

from __future__ import annotations

import contextlib
import hashlib
import io as _io
import json
import os
import tempfile
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image

from .errors import InputError
from .images import LoadedImage
from .tensors import to_uint8


def atomic_write_bytes(path: str | os.PathLike[str], data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically: temp file in the same folder, fsync, ``os.replace``."""
    path = Path(path)
    if path.is_dir():
        raise InputError(f"{path}: is a directory; give a file name for the output")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    except OSError as e:
        raise InputError(
            f"{path.parent}: cannot write the output there ({e.strerror or e}); choose a writable folder"
        ) from None
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    with contextlib.suppress(OSError):
        dfd = os.open(path.parent, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)
    return path


def write_json(path: str | os.PathLike[str], obj: Any) -> Path:
    """Write ``obj`` as indented JSON, atomically (non-JSON values are written with ``str``)."""
    text = json.dumps(obj, indent=2, sort_keys=True, default=str) + "\n"
    return atomic_write_bytes(path, text.encode())


def _same_file(a: Path, b: Path) -> bool:
    try:
        return a.resolve() == b.resolve() or (a.exists() and b.exists() and os.path.samefile(a, b))
    except OSError:
        return False


def save_png(
    image: Any,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    keep_metadata: bool = False,
    alpha: np.ndarray | None = None,
    source: LoadedImage | None = None,
) -> Path:
    """Save an image as an 8-bit PNG, atomically, never over the input (see :func:`encode_png`).

    Returns:
        The written path.
    """
    path = Path(path)
    data = encode_png(
        image, path, metadata=metadata, keep_metadata=keep_metadata, alpha=alpha, source=source
    )
    return atomic_write_bytes(path, data)


def encode_png(
    image: Any,
    path: str | os.PathLike[str],
    *,
    metadata: dict[str, Any] | None = None,
    keep_metadata: bool = False,
    alpha: np.ndarray | None = None,
    source: LoadedImage | None = None,
) -> bytes:
    """The bytes of an 8-bit PNG for ``path`` (checked: a ``.png`` name, never the input itself).

    Args:
        image: float tensor in [0,1] or uint8 array (see :func:`to_uint8`).
        path: output file; must end in ``.png``; parent folders are created.
        metadata: text chunks to write (values that are not strings are JSON-encoded).
        keep_metadata: copy the source's EXIF (orientation reset); default strips all metadata.
        alpha: uint8 ``(H, W)`` alpha to attach; defaults to ``source.alpha``.
        source: the loaded input; the output is refused if it would replace that file.

    Shape:
        ``image``: ``(1, 3, H, W)`` / ``(3, H, W)`` float, or ``(H, W, C)`` uint8; alpha ``(H, W)``.
    """
    from PIL.PngImagePlugin import PngInfo

    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(f"{path}: the output is a PNG; give a file name ending in .png")
    if source is not None and _same_file(path, source.path):
        raise InputError(
            f"{path}: the output would overwrite the input; choose another output path"
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
        if source.exif:
            kwargs["exif"] = source.exif
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
