"""Which image formats stillguard reads, which file names folder mode takes, which are lossy.

Choices:
    * HEIC/HEIF (phone photos) come from ``pillow-heif``, a pinned dependency; its opener is
      registered with Pillow once, before any read (:func:`register_formats`), so a HEIC reads the
      same in a folder, as a single file and on the web page. An install that skipped dependencies
      still runs, and a HEIC file then gets a line saying what to install (:func:`describe_bytes`);
    * folder mode takes every extension Pillow registers for a supported format (AVIF with Pillow
      11.2+, ``.heic``/``.heif``) plus the common ones;
    * lossy formats (:data:`LOSSY_FORMATS`) are those whose encoders discard detail: a protected
      photo re-saved in one of them loses part of its perturbation (:mod:`stillguard.app.lossy`).
      WebP and AVIF can be lossless but rarely are; they count as lossy.
"""

from __future__ import annotations

import os
from pathlib import Path

from PIL import Image

IMAGE_EXTENSIONS = frozenset(".png .jpg .jpeg .jpe .webp .tif .tiff .bmp .gif .ppm .tga".split())
SUPPORTED_FORMATS = frozenset("PNG JPEG MPO WEBP TIFF BMP GIF PPM TGA AVIF HEIF".split())
LOSSY_FORMATS = frozenset("JPEG MPO WEBP AVIF HEIF".split())
_HEIF: list[bool] = []  # filled once by register_formats


def register_formats() -> bool:
    """Register HEIC/HEIF with Pillow, once; True when ``pillow-heif`` is installed."""
    if not _HEIF:
        try:
            from pillow_heif import register_heif_opener  # type: ignore[import-not-found]

            register_heif_opener()
            _HEIF.append(True)
        except ImportError:  # pragma: no cover - a dependency; only an install without deps
            _HEIF.append(False)
    return _HEIF[0]


def image_extensions() -> frozenset[str]:
    """File name endings folder mode picks up: every extension Pillow registers for a supported format.

    With Pillow 11.2+ this includes ``.avif``; with ``pillow-heif`` ``.heic``/``.heif``.
    """
    register_formats()
    Image.init()
    found = {e for e, f in Image.registered_extensions().items() if f in SUPPORTED_FORMATS}
    return frozenset(found | IMAGE_EXTENSIONS)


def is_image_name(path: str | os.PathLike[str]) -> bool:
    """Does folder mode take this file (by its name ending; the content is checked on load)?"""
    return Path(path).suffix.lower() in image_extensions()


def format_of_name(path: str | os.PathLike[str]) -> str | None:
    """The format Pillow registers for the file name's ending (``"JPEG"`` for ``.jpg``), or None."""
    register_formats()
    Image.init()
    return Image.registered_extensions().get(Path(path).suffix.lower())


def is_lossy(fmt: str | None) -> bool:
    """Is ``fmt`` (a Pillow format name) a lossy one?"""
    return (fmt or "").upper() in LOSSY_FORMATS


def describe_bytes(data: bytes) -> str:
    """What a file that Pillow cannot open looks like, for the error line."""
    if data[:64].lstrip().startswith((b"<?xml", b"<svg")):
        return "it looks like SVG/XML"
    if data[4:8] == b"ftyp" and data[8:12] in (b"heic", b"heix", b"mif1", b"msf1", b"hevc"):
        return (
            "it looks like HEIC/HEIF, which needs the pillow-heif package: pip install pillow-heif"
        )
    try:
        return data[:64].decode("utf-8") and "it looks like text"
    except UnicodeDecodeError:
        return f"it starts with {data[:8]!r}"
