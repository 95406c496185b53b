"""Image input and output: load and validate user photos, save protected PNGs atomically.

Choices (documented here once, relied on by the CLI and the batch runner):

* **Orientation**: the EXIF orientation is applied to the pixels (``ImageOps.exif_transpose``); the
  tensor and the output have the *displayed* size, and the orientation tag is not written back.
* **Colour**: an embedded ICC profile is converted to sRGB (``ImageCms``); a broken profile is
  ignored with a logged warning. CMYK without a profile uses Pillow's plain conversion.
* **Modes**: 16-bit grayscale (``I;16*``, ``I``) is scaled by 1/65535; 16-bit RGB(A) files are
  decoded by Pillow at 8 bits per channel. Palette images become RGB (RGBA when transparent);
  grayscale (``L``, ``1``) is protected and saved as **RGB**, because the perturbation has colour and
  folding it back to gray would remove most of it. 32-bit float images are refused.
* **Alpha**: the RGB channels are protected as they are (what diffusers' ``load_image`` feeds the
  model: it drops alpha); the alpha channel is kept unchanged and re-attached to the output PNG.
  A fully opaque alpha channel is dropped.
* **Size**: images whose shorter side is below ``MIN_SIDE`` pixels are refused (the model would see a
  stretched stripe; nothing meaningful can be protected); thin images at or above it are accepted.
  More than ``max_pixels`` pixels (default ``DEFAULT_MAX_PIXELS``) is refused before decoding.
* **Animation**: animated or multi-page files (GIF, APNG, WebP, TIFF) are refused; protecting one
  frame would silently turn an animation into a still. MPO (camera JPEG with a preview) uses its
  primary image.
* **Output**: always an 8-bit PNG, written atomically (temporary file in the same folder, fsync,
  ``os.replace``), never over the input, with no metadata unless ``keep_metadata=True`` (EXIF only,
  orientation reset).
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

from .errors import InputError

log = logging.getLogger(__name__)

DEFAULT_MAX_PIXELS = 50_000_000
MIN_SIDE = 16
MAX_FILE_BYTES = 1 << 30
IMAGE_EXTENSIONS = frozenset(
    {".png", ".jpg", ".jpeg", ".jpe", ".webp", ".tif", ".tiff", ".bmp", ".gif", ".ppm", ".tga"}
)
SUPPORTED_FORMATS = frozenset(
    {"PNG", "JPEG", "MPO", "WEBP", "TIFF", "BMP", "GIF", "PPM", "TGA", "AVIF"}
)
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

    @property
    def path(self) -> Path:
        return Path(self.info["path"])

    @property
    def sha256(self) -> str:
        return self.info["sha256"]


def _stat_input(path: Path) -> os.stat_result:
    """Stat ``path`` following links; refuse anything that is not a readable regular file."""
    try:
        st = os.stat(path)
    except FileNotFoundError:
        if os.path.islink(path):
            raise InputError(
                f"{path}: broken symbolic link (its target does not exist); pass the real file"
            ) from None
        raise InputError(f"{path}: no such file; check the path") from None
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(
                f"{path}: symbolic link loop (the link points back to itself); pass the real file"
            ) from None
        raise InputError(f"{path}: cannot access the file ({e.strerror}); check the path") from None
    if stat.S_ISDIR(st.st_mode):
        raise InputError(
            f"{path}: is a directory, not an image; pass image files or a folder to batch"
        )
    if not stat.S_ISREG(st.st_mode):
        raise InputError(f"{path}: not a regular file (device, pipe or socket); pass an image file")
    if st.st_size == 0:
        raise InputError(f"{path}: the file is empty (0 bytes); re-export or re-download the image")
    if st.st_size > MAX_FILE_BYTES:
        raise InputError(
            f"{path}: the file is {st.st_size / 2**20:.0f} MiB, over the {MAX_FILE_BYTES >> 20} MiB "
            "limit; downscale or re-encode the image"
        )
    return st


def _read(path: Path) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except PermissionError:
        raise InputError(
            f"{path}: permission denied while reading; fix the file's permissions (chmod u+r)"
        ) from None
    except OSError as e:
        raise InputError(
            f"{path}: cannot read the file ({e.strerror or e}); check the disk"
        ) from None


def _describe_bytes(data: bytes) -> str:
    head = data[:64]
    if head.lstrip().startswith((b"<?xml", b"<svg")):
        return "it looks like SVG/XML"
    try:
        head.decode("utf-8")
        return "it looks like text"
    except UnicodeDecodeError:
        return f"it starts with {data[:8]!r}"


def _open(path: Path, data: bytes, max_pixels: int, min_side: int = MIN_SIDE) -> Image.Image:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        warnings.simplefilter("ignore", UserWarning)  # corrupt-EXIF notes: errors surface on load
        try:
            img = Image.open(_io.BytesIO(data))
        except UnidentifiedImageError:
            raise InputError(
                f"{path}: not an image Pillow can read ({_describe_bytes(data)}); supported: "
                f"{', '.join(sorted(SUPPORTED_FORMATS))}"
            ) from None
        except Image.DecompressionBombError:
            raise InputError(
                f"{path}: declares a huge size (decompression bomb guard); refusing to decode it"
            ) from None
        except _DECODE_ERRORS as e:
            raise InputError(f"{path}: broken image header ({e}); re-export the image") from None
    if img.format not in SUPPORTED_FORMATS:
        raise InputError(
            f"{path}: {img.format} images are not supported; convert to PNG or JPEG first"
        )
    w, h = img.size
    if w * h > max_pixels:
        raise InputError(
            f"{path}: {w}x{h} = {w * h / 1e6:.1f} megapixels is over the limit of "
            f"{max_pixels / 1e6:.1f}; downscale it, or raise the limit (max_pixels, --max-pixels) if intended"
        )
    if min(w, h) < min_side:
        raise InputError(
            f"{path}: {w}x{h} is too small to protect (shorter side under {min_side} pixels); "
            "use a larger image"
        )
    if img.format != "MPO" and getattr(img, "n_frames", 1) > 1:
        raise InputError(
            f"{path}: animated/multi-frame image ({img.n_frames} frames) is not supported; "
            "export the frame you want as a still PNG or JPEG"
        )
    return img


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
        log.warning("%s: ignoring an unusable ICC profile (%s)", path, e)
        return img, False


def load_image(
    path: str | os.PathLike[str],
    *,
    max_pixels: int = DEFAULT_MAX_PIXELS,
    min_side: int = MIN_SIDE,
) -> LoadedImage:
    """Load and validate a photo for protection.

    Args:
        path: an image file (PNG, JPEG, WebP, TIFF, BMP, GIF, ...).
        max_pixels: refuse images with more pixels than this (checked before decoding).
        min_side: refuse images whose shorter side is under this (photos to protect; a target
            image of a method may be smaller).

    Returns:
        A :class:`LoadedImage`; see the module docstring for how modes, alpha and colour are handled.

    Raises:
        InputError: one line saying what is wrong with the file and how to fix it.

    Shape:
        ``tensor``: ``(1, 3, H, W)`` float32 in ``[0, 1]``, ``H, W`` the displayed size.
    """
    import torch

    path = Path(path)
    _stat_input(path)
    data = _read(path)
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
            info["exif_orientation"] = int(img.getexif().get(0x0112, 1) or 1)
            img = ImageOps.exif_transpose(img)
            exif = img.getexif()
            exif.pop(0x0112, None)
            exif_bytes = exif.tobytes() if len(exif) else None
        except _DECODE_ERRORS as e:
            raise InputError(
                f"{path}: the image data is broken or truncated ({e}); re-export or re-download it"
            ) from None
    alpha = None
    mode = img.mode
    if mode == "F":
        raise InputError(f"{path}: 32-bit float images are not supported; save as 8/16-bit PNG")
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
                raise InputError(f"{path}: cannot convert mode {mode} to RGB ({e})") from None
        icc = img.info.get("icc_profile")
        if img.mode == "RGBA":
            a = np.asarray(img.getchannel("A"))
            if a.min() < 255:
                alpha = a.copy()
            img = img.convert("RGB")
        img, info["icc_converted"] = _to_srgb(img, icc, path)
        rgb = np.asarray(img.convert("RGB"), dtype=np.float32) / 255.0
    info["had_alpha"] = alpha is not None
    info["size"] = [rgb.shape[1], rgb.shape[0]]
    tensor = torch.from_numpy(np.ascontiguousarray(rgb.transpose(2, 0, 1)))[None].float()
    return LoadedImage(tensor=tensor, info=info, alpha=alpha, exif=exif_bytes)
