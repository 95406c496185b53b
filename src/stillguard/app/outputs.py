"""Save a protection result: the 8-bit PNG and its JSON sidecar, each written atomically; check an
output folder before any work (:func:`check_writable`).

The loop (:func:`stillguard.protect`) returns a :class:`~stillguard.loop.Protected` and never
touches files; this module turns it into files. The sidecar records the method, model, every loop
setting, seed, versions, hashes (input pixels, output pixels, output file) and PSNR/SSIM/L-infinity.
The PNG carries no stillguard marker: a tag saying "protected" would tell an attacker which images
to purify. The sidecar is a separate file the user may keep private.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..files import (
    atomic_write_bytes,
    encode_png,
    is_temporary_of,
    remove_stale_temporaries,
    sha256_bytes,
    write_json,
)
from ..images import LoadedImage
from ..metadata import exif_to_write, has_gps
from ..names import shown_name
from ..protected import TOY_WARNING, Protected
from ..tensors import to_uint8
from .lossy import lossy_input_note

log = logging.getLogger(__name__)


def image_metrics(result: Protected) -> dict[str, Any]:
    """PSNR, SSIM, L-infinity (8-bit steps) and L2 of the protected image vs the original.

    SSIM is ``None`` when the measurement layer cannot be imported (the ``eval`` extra is missing).
    """
    try:
        from ..measure.metrics import imperceptibility

        m = imperceptibility(result.original, result.image)
        out: dict[str, Any] = {k: m[k] for k in ("psnr", "ssim", "linf_255", "l2")}
    except ImportError:  # pragma: no cover - the [eval] extra is not installed
        d = (result.image - result.original).double()
        mse = float(d.pow(2).mean())
        out = {
            "psnr": math.inf if mse == 0 else -10 * math.log10(mse),
            "ssim": None,
            "linf_255": float(d.abs().max() * 255),
            "l2": float(d.flatten().norm()),
        }
    out["psnr"] = None if math.isinf(out["psnr"]) else out["psnr"]  # JSON has no inf
    out["linf_255"] = int(round(out["linf_255"]))
    return out


def sidecar(result: Protected, name: str, file_sha256: str, **extra: Any) -> dict[str, Any]:
    """The JSON sidecar of a saved PNG named ``name`` whose bytes hash to ``file_sha256``.

    ``extra`` entries (e.g. the batch runner's input facts) are merged in at the top level.
    """
    real = result.real_model

    def pixels(x: Any) -> str:
        return hashlib.sha256(to_uint8(x).tobytes()).hexdigest()

    side: dict[str, Any] = {
        "stillguard": result.config.get("versions", {}).get("stillguard"),
        "file": name,
        "real_model": real,
        "input_pixels_sha256": pixels(result.original),
        "output_pixels_sha256": pixels(result.image),
        "output_file_sha256": file_sha256,
        "budget_255": result.config.get("budget_255"),
        **image_metrics(result),
        "seconds": round(result.seconds, 3),
        "config": result.config,
        "losses": result.losses,
        "terms": result.terms,
    }
    if not real:
        side["warning"] = TOY_WARNING
    side.update(extra)
    return side


def sidecar_path(png: str | os.PathLike[str]) -> Path:
    """Where the sidecar of ``png`` goes: the same name with ``.json``."""
    return Path(png).with_suffix(".json")


def save_protected(
    result: Protected,
    path: str | os.PathLike[str],
    *,
    source: LoadedImage | None = None,
    keep_metadata: bool | str = False,
    extra: dict[str, Any] | None = None,
    clean_stale: bool = True,
) -> Path:
    """Write the 8-bit PNG and its JSON sidecar (``path.with_suffix('.json')``), each atomically.

    Args:
        result: what :func:`stillguard.protect` returned.
        path: output ``.png`` (a lossy format would break the budget guarantee); its folder is
            created if missing.
        source: the :class:`~stillguard.images.LoadedImage` the input came from: the output is
            refused if it would replace that file, and its alpha channel is re-attached unchanged.
        keep_metadata: ``True`` copies the source's EXIF without its GPS position,
            :data:`stillguard.metadata.KEEP_GPS` with it; default: strip all metadata (privacy).
        extra: more sidecar entries. Added here: ``gps_kept`` (whether the PNG carries a GPS
            position) and, for a lossy input, ``lossy_input`` (what re-saving lossily costs).
        clean_stale: remove this PNG's and sidecar's temporaries left by a killed run (a batch
            does it once for the whole folder when it opens its manifest, and passes False).

    Order: stale temporaries of these two files left by a killed run are removed (ones a live
    writer holds are kept), the PNG is written, then the sidecar; if the sidecar cannot be written
    (a full disk) the PNG is removed again, so a PNG never lies there without its sidecar.

    Returns:
        The PNG path.

    Raises:
        WriteError: the disk is full (or read-only, ...), naming the file.
    """
    path = Path(path)
    if path.suffix.lower() != ".png":
        raise InputError(
            f"cannot save the protected image as {path.name!r}: use a .png name; a lossy format "
            "(JPEG, WebP) would change the perturbation and break the budget guarantee"
        )
    data = encode_png(result.image, path, source=source, keep_metadata=keep_metadata)
    extra = {**(extra or {}), **_facts(source, keep_metadata)}
    side = sidecar_path(path)
    names = (path.name, side.name)
    if clean_stale:
        remove_stale_temporaries(path.parent, lambda n: any(is_temporary_of(n, o) for o in names))
    atomic_write_bytes(path, data)
    try:
        write_json(side, sidecar(result, path.name, sha256_bytes(data), **extra))
    except BaseException:
        path.unlink(missing_ok=True)  # never a PNG without its sidecar (e.g. the disk got full)
        raise
    log.info("saved %s and %s", shown_name(path), shown_name(side.name))
    return path


def _facts(source: LoadedImage | None, keep_metadata: bool | str) -> dict[str, Any]:
    """Sidecar entries about what the PNG carries and what a lossy re-save would cost."""
    exif = exif_to_write(source.exif, keep_metadata) if source is not None else None
    facts: dict[str, Any] = {"gps_kept": has_gps(exif)}
    note = lossy_input_note(source.info.get("format")) if source is not None else None
    if note:
        facts["lossy_input"] = note
    return facts


def check_writable(folder: str | os.PathLike[str]) -> None:
    """Refuse an output folder that cannot be created or written, before any work is done."""
    path = Path(os.path.abspath(folder))
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(
            f"{shown_name(folder)}: cannot create the output folder ({shown_name(probe)} is a "
            "file); choose another"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(
            f"{shown_name(folder)}: the output folder is not writable ({shown_name(probe)}); "
            "choose another"
        )
