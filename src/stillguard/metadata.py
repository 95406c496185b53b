"""What metadata a protected PNG carries: nothing by default; the EXIF without GPS on request.

Three levels, one value (``keep_metadata`` everywhere a PNG is written):

* ``False`` (default): no metadata at all; the PNG holds pixels (and alpha) only.
* ``True`` (``--keep-metadata``): the photo's EXIF, minus the GPS position and the orientation.
* :data:`KEEP_GPS` (``--keep-metadata --keep-gps``): the same EXIF with the GPS position.

Choices: a photo's GPS block says where it was taken (often a home); someone who asks to keep
"metadata" usually wants the camera and the date, so GPS needs its own flag and the CLI warns when
it is kept. Orientation is dropped because the pixels are already rotated upright (writing it back
would rotate them twice). Only EXIF is copied; see :data:`KEPT` and :data:`DROPPED` (the README's
"Metadata" section lists the same).
"""

from __future__ import annotations

from typing import Any

from PIL import Image

from .errors import InputError

#: ``keep_metadata`` value that also keeps the GPS position
KEEP_GPS = "exif+gps"
GPS_IFD = 0x8825
ORIENTATION = 0x0112

#: what ``--keep-metadata`` copies into the PNG (the EXIF's IFD0 and its Exif/Interop sub-IFDs)
KEPT = (
    "Make",
    "Model",
    "DateTime",
    "DateTimeOriginal",
    "exposure and lens settings",
    "Artist",
    "Copyright",
    "MakerNote",
)
#: what is never copied (GPS only with --keep-gps)
DROPPED = (
    "GPS",
    "Orientation",
    "EXIF thumbnail",
    "XMP",
    "IPTC",
    "ICC profile",
    "PNG text chunks",
)


def check_keep(keep: Any) -> bool | str:
    """``keep`` as one of ``False``, ``True`` or :data:`KEEP_GPS` (anything else is refused)."""
    if keep is None or keep is False:
        return False
    if keep is True or keep == KEEP_GPS:
        return keep
    raise InputError(f"keep_metadata must be False, True or {KEEP_GPS!r}, got {keep!r}")


def label(keep: Any) -> str:
    """How ``keep`` enters a run hash: ``"False"``, ``"True"`` (as before GPS had its own level)
    or ``"True+gps"``, so a run that keeps GPS is not taken for one that did not."""
    keep = check_keep(keep)
    return "True+gps" if keep == KEEP_GPS else str(bool(keep))


def _load(exif: bytes) -> Image.Exif:
    e = Image.Exif()
    e.load(exif)
    return e


def exif_to_write(exif: bytes | None, keep: Any) -> bytes | None:
    """The EXIF bytes to write into the PNG for ``keep`` (``None``: write none).

    ``exif`` is :attr:`stillguard.images.LoadedImage.exif` (orientation already removed).
    """
    keep = check_keep(keep)
    if not keep or not exif:
        return None
    e = _load(exif)
    e.pop(ORIENTATION, None)
    if keep != KEEP_GPS:
        e.pop(GPS_IFD, None)
    return e.tobytes() if len(e) else None


def has_gps(exif: bytes | None) -> bool:
    """Does this EXIF hold a GPS block with any entry?"""
    if not exif:
        return False
    try:
        return bool(_load(exif).get_ifd(GPS_IFD))
    except (OSError, ValueError, SyntaxError, TypeError, KeyError):
        return False
