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

import contextlib
import errno
import hashlib
import io as _io
import json
import logging
import os
import stat
import tempfile
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


def _open(path: Path, data: bytes, max_pixels: int) -> Image.Image:
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
    if min(w, h) < MIN_SIDE:
        raise InputError(
            f"{path}: {w}x{h} is too small to protect (shorter side under {MIN_SIDE} pixels); "
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
    path: str | os.PathLike[str], *, max_pixels: int = DEFAULT_MAX_PIXELS
) -> LoadedImage:
    """Load and validate a photo for protection.

    Args:
        path: an image file (PNG, JPEG, WebP, TIFF, BMP, GIF, ...).
        max_pixels: refuse images with more pixels than this (checked before decoding).

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
    img = _open(path, data, max_pixels)
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


def to_uint8(image: Any) -> np.ndarray:
    """Tensor ``(1,3,H,W)``/``(3,H,W)`` float in [0,1], or uint8 array ``(H,W[,C])`` -> uint8 HWC.

    Shape:
        returns ``(H, W, C)`` with ``C`` in 1..4 (``(H, W)`` input gives ``(H, W, 1)``).
    """
    import torch

    if isinstance(image, torch.Tensor):
        t = image.detach().cpu()
        if t.ndim == 4:
            if t.shape[0] != 1:
                raise InputError(f"save_png takes one image, got a batch of {t.shape[0]}")
            t = t[0]
        if t.dtype.is_floating_point:
            arr = (t.clamp(0, 1) * 255).round().to(torch.uint8)
        else:
            arr = t
        arr = arr.numpy()
        if arr.ndim == 3 and arr.shape[0] in (1, 3, 4):
            arr = arr.transpose(1, 2, 0)
    else:
        arr = np.asarray(image)
        if arr.dtype != np.uint8:
            arr = np.clip(np.round(arr.astype(np.float64) * 255), 0, 255)
    arr = np.ascontiguousarray(arr.astype(np.uint8))
    if arr.ndim == 2:
        arr = arr[..., None]
    if arr.ndim != 3 or arr.shape[2] not in (1, 3, 4):
        raise InputError(f"cannot save an image of shape {tuple(arr.shape)} as PNG")
    return arr


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
    """Save an image as an 8-bit PNG, atomically, never over the input.

    Args:
        image: float tensor in [0,1] or uint8 array (see :func:`to_uint8`).
        path: output file; must end in ``.png``; parent folders are created.
        metadata: text chunks to write (values that are not strings are JSON-encoded).
        keep_metadata: copy the source's EXIF (orientation reset); default strips all metadata.
        alpha: uint8 ``(H, W)`` alpha to attach; defaults to ``source.alpha``.
        source: the loaded input; the output is refused if it would replace that file.

    Returns:
        The written path.

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
    return atomic_write_bytes(path, buf.getvalue())


def sha256_file(path: str | os.PathLike[str], chunk: int = 1 << 20) -> str:
    """Hex SHA-256 of a file's bytes."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        while block := f.read(chunk):
            h.update(block)
    return h.hexdigest()
