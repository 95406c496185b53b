r"""Read and validate user photos: one check of the path, one read, one decode (``LoadedImage``).

Choices (documented here once, relied on by the CLI and the batch runner):

* **Which files**: :func:`check_input` is the one place that decides "a regular, readable file of a
  sane size"; it only ``stat``\ s, so FIFOs and devices are refused unopened. Folder mode takes the
  files whose extension Pillow registers for a supported format (:func:`~stillguard.formats.image_extensions`: AVIF
  with Pillow 11.2+, HEIC with ``pillow-heif``); single files are judged by their content.
* **Names** in messages go through :func:`stillguard.names.shown_name` (escaped when a newline
  or an escape sequence would split or recolour the line).
* **Orientation**: the EXIF orientation is applied (``ImageOps.exif_transpose``); the tensor has the
  *displayed* size; the tag is not written back. A non-integer tag (e.g. typed ASCII) is ignored.
  HEIC/HEIF: ``pillow-heif`` (a dependency, registered by :func:`~stillguard.formats.register_formats` before any
  read) applies the container's rotation while decoding and resets the EXIF tag, so it is not
  applied twice; ``info["exif_orientation"]`` still records the original value.
* **Colour**: an ICC profile is converted to sRGB (``ImageCms``); a broken one is ignored with a
  warning; a PNG profile over Pillow's 1 MB text-chunk guard is read with a 64 MB guard.
  CMYK without a profile uses Pillow's plain conversion.
* **Modes**: 16-bit gray is scaled by 1/65535, 16-bit RGB(A) decoded at 8 bits; palette becomes
  RGB(A); gray is protected as **RGB** (the perturbation has colour); 32-bit float is refused.
* **Alpha**: RGB is protected (diffusers' ``load_image`` drops alpha); alpha is re-attached
  unchanged to the output PNG; a fully opaque one is dropped.
* **Size**: a shorter side under ``MIN_SIDE`` is refused (the model would see a stretched stripe);
  more than ``max_pixels`` pixels (default ``DEFAULT_MAX_PIXELS``) is refused before decoding.
* **Animation**: animated or multi-page files are refused (one frame would silently turn an
  animation into a still); MPO (camera JPEG with a preview) uses its primary image.
"""

from __future__ import annotations

import errno
import hashlib
import io as _io
import logging
import os
import stat
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from PIL import Image, ImageCms, ImageOps, UnidentifiedImageError

from .bounds import check
from .errors import InputError
from .formats import (  # noqa: F401  (image_extensions, is_image_name: re-exported)
    SUPPORTED_FORMATS,
    describe_bytes,
    image_extensions,
    is_image_name,
    register_formats,
)
from .names import shown_name

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE = 16
MAX_FILE_BYTES = 1 << 30
#: the PNG text-chunk guard used for ICC profiles over Pillow's default (1 MB)
ICC_CHUNK_LIMIT = 64 << 20
_DECODE_ERRORS = (OSError, SyntaxError, ValueError, EOFError, IndexError, TypeError, MemoryError)


@dataclass
class LoadedImage:
    """A decoded, validated photo.

    Attributes:
        tensor: RGB pixels, float32 in ``[0, 1]``. Shape: ``(1, 3, H, W)``.
        info: JSON-able facts: path, format, mode, size, bits, icc, had_alpha, sha256, ...
        alpha: the alpha channel to re-attach on save, uint8 ``(H, W)``, or ``None``.
        exif: EXIF bytes with orientation reset (used only when saving with ``keep_metadata``).
    """

    tensor: Any
    info: dict[str, Any]
    alpha: np.ndarray | None = None
    exif: bytes | None = field(default=None, repr=False)

    path = property(lambda self: Path(self.info["path"]), doc="The input file.")
    sha256 = property(lambda self: self.info["sha256"], doc="SHA-256 (hex) of the file's bytes.")


def check_input(path: str | os.PathLike[str]) -> os.stat_result:
    """Refuse anything that is not a readable regular file of a sane size, before any read.

    The one place that decides it (single files, folders and batches all come here): it only calls
    ``stat``, so a FIFO, a socket or ``/dev/zero`` is refused without being opened.

    Raises:
        InputError: missing, broken/looping link, directory, special file, empty or over 1 GiB.
    """
    path, name = Path(path), shown_name(path)
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(
                f"{name}: broken symbolic link (its target does not exist); pass the real file"
            ) from None
        raise InputError(f"{name}: no such file; check the path") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(
                f"{name}: symbolic link loop (the link points back to itself); pass the real file"
            ) from None
        raise InputError(f"{name}: cannot access the file ({e.strerror}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(f"{name}: is a directory, not an image; pass image files or a folder")
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{name}: not a regular file (device, pipe or socket); pass an image file")
    if st.st_size == 0:
        raise InputError(f"{name}: the file is empty (0 bytes); re-export or re-download the image")
    if st.st_size > MAX_FILE_BYTES:
        mib = f"{st.st_size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES >> 20} MiB limit"
        raise InputError(f"{name}: the file is {mib}; downscale or re-encode the image")
    return st


def _read(path: Path, checked: os.stat_result) -> bytes:
    """Read the file :func:`check_input` passed (opened non-blocking; refused if swapped since)."""
    name = shown_name(path)
    extra = getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOCTTY", 0)
    try:
        with open(path, "rb", opener=lambda p, flags: os.open(p, flags | extra)) as f:
            st = os.fstat(f.fileno())
            if (st.st_dev, st.st_ino) != (checked.st_dev, checked.st_ino):
                raise InputError(f"{name}: the file was replaced while being read; pass it again")
            return f.read(MAX_FILE_BYTES + 1)
    except PermissionError:
        raise InputError(f"{name}: permission denied while reading; fix it (chmod u+r)") from None
    except OSError as e:
        raise InputError(f"{name}: cannot read it ({e.strerror or e}); check the disk") from None


def _open(path: Path, data: bytes, max_pixels: int, min_side: int = MIN_SIDE) -> Image.Image:
    name = shown_name(path)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # corrupt-EXIF notes: errors surface on load
        try:
            img = _pil_open(data)
        except UnidentifiedImageError:
            raise InputError(
                f"{name}: not an image Pillow can read ({describe_bytes(data)}); supported: "
                f"{', '.join(sorted(SUPPORTED_FORMATS))}"
            ) from None
        except Image.DecompressionBombError:
            raise InputError(
                f"{name}: declares a huge size (decompression bomb guard); refusing to decode it"
            ) from None
        except _DECODE_ERRORS as e:
            raise InputError(f"{name}: broken image header ({e}); re-export the image") from None
    if img.format not in SUPPORTED_FORMATS:
        raise InputError(f"{name}: {img.format} images are not supported; convert to PNG or JPEG")
    w, h = img.size
    if w * h > max_pixels:
        raise InputError(
            f"{name}: {w}x{h} = {w * h / 1e6:.1f} megapixels is over the limit of "
            f"{max_pixels / 1e6:.1f}; downscale it, or raise the limit (max_pixels, --max-pixels) if intended"
        )
    if min(w, h) < min_side:
        raise InputError(
            f"{name}: {w}x{h} is too small to protect (shorter side under {min_side} pixels); "
            "use a larger image"
        )
    if img.format != "MPO" and getattr(img, "n_frames", 1) > 1:
        raise InputError(
            f"{name}: animated/multi-frame image ({img.n_frames} frames) is not supported; "
            "export the frame you want as a still PNG or JPEG"
        )
    return img


def _pil_open(data: bytes) -> Image.Image:
    """``Image.open``; a PNG whose ICC profile is over the 1 MB text guard is reopened with 64 MB."""
    from PIL import PngImagePlugin

    register_formats()
    try:
        return Image.open(_io.BytesIO(data))
    except ValueError as e:
        if "MAX_TEXT_CHUNK" not in str(e) or PngImagePlugin.MAX_TEXT_CHUNK >= ICC_CHUNK_LIMIT:
            raise
    old = PngImagePlugin.MAX_TEXT_CHUNK
    PngImagePlugin.MAX_TEXT_CHUNK = ICC_CHUNK_LIMIT
    try:
        return Image.open(_io.BytesIO(data))  # iCCP comes before the pixel data
    finally:
        PngImagePlugin.MAX_TEXT_CHUNK = old


def _orientation(img: Image.Image) -> int:
    value = img.getexif().get(0x0112, 1)  # the tag may be typed ASCII: ignored
    return value if isinstance(value, int) and 1 <= value <= 8 else 1


def _to_srgb(img: Image.Image, icc: bytes | None, path: Path) -> tuple[Image.Image, bool]:
    """Convert ``img`` (RGB, CMYK or L) from its ICC profile to sRGB; sRGB profiles are kept as is."""
    if not icc or img.mode not in ("RGB", "CMYK", "L"):
        return img, False
    try:
        src = ImageCms.ImageCmsProfile(_io.BytesIO(icc))
        if ImageCms.getProfileDescription(src).strip().lower().startswith("srgb"):
            return img, False
        dst = ImageCms.createProfile("sRGB")
        return ImageCms.profileToProfile(img, src, dst, outputMode="RGB"), True
    except (ImageCms.PyCMSError, OSError, ValueError, TypeError) as e:
        log.warning("%s: ignoring an unusable ICC profile (%s)", shown_name(path), e)
        return img, False


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> LoadedImage:
    """Load and validate a photo for protection: check the path, read it once, hash and decode.

    ``max_pixels`` is checked before decoding; ``min_side`` refuses photos with a shorter side under
    it (a method's target image may be smaller). See the module docstring for modes, alpha, colour.

    Raises:
        InputError: one line saying what is wrong with the file and how to fix it.

    Shape:
        ``tensor``: ``(1, 3, H, W)`` float32 in ``[0, 1]``, ``H, W`` the displayed size.
    """
    import torch

    check("max_pixels", max_pixels)  # a zero limit would refuse every photo (stillguard.bounds)
    path, name = Path(path), shown_name(path)
    data = _read(path, check_input(path))
    img = _open(path, data, max_pixels, min_side)
    info: dict[str, Any] = {
        "path": str(path),
        "sha256": hashlib.sha256(data).hexdigest(),
        "bytes": len(data),
        "format": img.format,
        "mode": img.mode,
        "file_size": list(img.size),
    }
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)
        try:
            img.load()
            info["exif_orientation"] = _orientation(img)
            if info["exif_orientation"] != 1:
                img = ImageOps.exif_transpose(img)
            elif img.info.get("original_orientation") not in (None, 1):  # HEIF: the decoder
                info["exif_orientation"] = int(img.info["original_orientation"])  # rotated it
            (exif := img.getexif()).pop(0x0112, None)
            exif_bytes = exif.tobytes() if len(exif) else None
        except _DECODE_ERRORS as e:
            raise InputError(
                f"{name}: the image data is broken or truncated ({e}); re-export or re-download it"
            ) from None
    alpha, mode = None, img.mode
    if mode == "F":
        raise InputError(f"{name}: 32-bit float images are not supported; save as 8/16-bit PNG")
    if mode in ("I", "I;16", "I;16B", "I;16L", "I;16N"):
        arr = np.asarray(img).astype(np.float32) / 65535.0
        rgb = np.repeat(np.clip(arr, 0.0, 1.0)[..., None], 3, axis=2)
        info["bits"] = 16
    else:
        info["bits"] = 8
        if mode == "P":
            img = img.convert("RGBA" if "transparency" in img.info else "RGB")
        elif mode in ("LA", "La", "PA", "RGBa"):
            img = img.convert("RGBA")
        elif mode not in ("RGB", "RGBA", "L", "CMYK"):
            try:
                img = img.convert("RGB")
            except _DECODE_ERRORS as e:
                raise InputError(f"{name}: cannot convert mode {mode} to RGB ({e})") from None
        icc = img.info.get("icc_profile")
        if img.mode == "RGBA":
            a = np.asarray(img.getchannel("A"))
            alpha, img = (a.copy() if a.min() < 255 else None), img.convert("RGB")
        img, info["icc_converted"] = _to_srgb(img, icc, path)
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    info["had_alpha"] = alpha is not None
    info["size"] = [rgb.shape[1], rgb.shape[0]]
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
    return LoadedImage(tensor=tensor, info=info, alpha=alpha, exif=exif_bytes)
