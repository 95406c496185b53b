"""`protect`'s options checked before any work, and the run-level notes they call for.

Every number goes through :mod:`stillguard.bounds` (the one table of ranges) before a model is
loaded, a photo read or Ray started, so each bad value is one ``error:`` line that gives the range.
"""

from __future__ import annotations

from ..bounds import check_all
from ..errors import InputError
from ..metadata import KEEP_GPS
from ._common import _batch_size, _stderr

GPS_WARNING = (
    "warning: --keep-gps: the protected PNGs carry the GPS position where each photo was taken; "
    "anyone who gets them can read it (leave out --keep-gps to drop it)"
)
GPS_NOTE = (
    "note: --keep-metadata copies the EXIF (camera, date, exposure) without the GPS position; "
    "add --keep-gps to keep that too"
)


def checked_options(
    *,
    steps: int | None,
    seed: int | None,
    max_pixels: int,
    gpu_memory: str | None,
    batch_size: str,
    workers: int | None,
    cpus_per_worker: int,
    keep_metadata: bool,
    keep_gps: bool,
    json_out: bool,
) -> bool | str:
    """Check protect's numbers and flags; return the ``keep_metadata`` value to pass on.

    ``--keep-gps`` alone is refused (it widens what --keep-metadata copies); keeping GPS prints a
    warning, keeping the rest a note that GPS was left out.

    Raises:
        InputError: a number out of its range, or ``--keep-gps`` without ``--keep-metadata``.
    """
    check_all({
        "--steps": ("steps", steps),
        "--seed": ("seed", seed),
        "--max-pixels": ("max_pixels", max_pixels),
        "--workers": ("workers", workers),
        "--cpus-per-worker": ("cpus_per_worker", cpus_per_worker),
    })  # fmt: skip
    _batch_size(batch_size)
    if gpu_memory is not None:
        from ..plan.gpus import check_memory

        check_memory(gpu_memory)
    if keep_gps and not keep_metadata:
        raise InputError(
            "--keep-gps keeps the GPS position inside the EXIF that --keep-metadata copies: "
            "pass both, or neither to strip all metadata"
        )
    if keep_metadata:
        print_line = _stderr().print
        if keep_gps:
            print_line(GPS_WARNING, style="bold yellow", markup=False)
        elif not json_out:
            print_line(GPS_NOTE, style="yellow", markup=False)
    return KEEP_GPS if keep_gps else bool(keep_metadata)
