"""The page's protect job, without gradio: uploaded files in, PNGs, sidecars and previews out.

Each upload goes through the unit of work every executor and the CLI use
(:mod:`stillguard.app.run.unit`): read and checked once (the CLI's checks and words: broken file,
not an image, decompression bomb, too small, animated, too many pixels), protected with the run's
config, saved atomically (8-bit PNG at the original resolution + JSON sidecar, with the same
sidecar entries as a CLI batch, the upload's own name as the input's path, and ``"front": "web"``).
A bad upload gets its message, with the file's own name instead of the server's temporary path,
and nothing is written for it; the others go on.

Choices:
    * outputs go to ``out_root/<run id>/``; that folder is created only when a photo is protected,
      so a run with only bad uploads leaves nothing behind;
    * output names are ``STEM.protected.png``/``.json`` from the uploaded name (characters other
      than letters, digits, ``-``, ``_`` and ``.`` become ``_``; a repeated name gets ``-2``, ...);
    * previews (what the page shows, not what it downloads) are PNGs at most
      :data:`PREVIEW_SIDE` pixels on the long side; the difference is ``0.5 + 10 (protected -
      original)`` (mid-grey = unchanged) and is shrunk with nearest-neighbour sampling so the
      perturbation's grain stays visible instead of being averaged away;
    * several protected photos also come as one zip (PNGs and sidecars), stored uncompressed
      (PNG is already compressed).
"""

from __future__ import annotations

import json
import re
import time
import uuid
import zipfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..app.run import BatchItem
from ..app.run.unit import protect_one, read
from ..errors import InputError, StillguardError
from ..files import WriteError
from ..names import one_line, shown_name
from .session import Session

PREVIEW_SIDE = 1024
ZIP_NAME = "stillguard-protected.zip"


class Cancelled(Exception):
    """The person stopped the run or closed the tab; raised inside the loop's callback."""


@dataclass
class Upload:
    """An uploaded file: where the server stored it and the name the person gave it."""

    path: Path
    name: str


@dataclass
class PhotoResult:
    """What happened to one upload."""

    name: str
    status: str  # "ok" or "failed"
    error: str | None = None
    png: Path | None = None
    sidecar: Path | None = None
    previews: dict[str, Path] = field(default_factory=dict)  # original, protected, difference
    metrics: dict[str, Any] = field(default_factory=dict)  # psnr, ssim, linf_255, seconds, size


@dataclass
class RunResult:
    """A protect job: one :class:`PhotoResult` per upload, and the files to download."""

    photos: list[PhotoResult]
    downloads: list[Path]
    folder: Path | None
    budget_255: int
    demo: bool

    @property
    def ok(self) -> list[PhotoResult]:
        return [p for p in self.photos if p.status == "ok"]


def safe_stem(name: str) -> str:
    """A file-name stem safe on any system, from an uploaded name (``"my photo.jpg"`` -> ``"my_photo"``)."""
    stem = Path(name).stem if Path(name).suffix else name
    stem = re.sub(r"[^A-Za-z0-9._-]+", "_", stem).strip("._") or "photo"
    return stem[:100]


def user_message(err: BaseException, upload: Upload) -> str:
    """The error's one-line message with the server's temporary path replaced by the upload's name."""
    text = " ".join(str(err).split()) or type(err).__name__
    text = one_line(text.replace(shown_name(upload.path), shown_name(upload.name)))
    if not isinstance(err, StillguardError):
        text = f"{type(err).__name__}: {text}"
    return text


def previews(original: Any, image: Any, folder: Path, stem: str) -> dict[str, Path]:
    """Write the original, protected and difference-x10 previews; return their paths."""
    import numpy as np
    from PIL import Image

    from ..tensors import to_uint8

    folder.mkdir(parents=True, exist_ok=True)
    diff = (0.5 + 10 * (image - original)).clamp(0, 1)
    out = {}
    for key, x, resample in (
        ("original", original, Image.Resampling.LANCZOS),
        ("protected", image, Image.Resampling.LANCZOS),
        ("difference", diff, Image.Resampling.NEAREST),
    ):
        img = Image.fromarray(np.ascontiguousarray(to_uint8(x)))
        if max(img.size) > PREVIEW_SIDE:
            img.thumbnail((PREVIEW_SIDE, PREVIEW_SIDE), resample)
        out[key] = folder / f"{stem}.{key}.png"
        img.save(out[key])
    return out


def _unique(stem: str, taken: set[str]) -> str:
    name, n = stem, 1
    while name.lower() in taken:
        n += 1
        name = f"{stem}-{n}"
    taken.add(name.lower())
    return name


def protect_uploads(
    session: Session,
    uploads: Sequence[Upload],
    choice: str,
    budget_255: float,
    *,
    steps: int | None = None,
    seed: int | None = None,
    on_step: Callable[[int, int, str, int, int], None] | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> RunResult:
    """Protect each upload with ``choice`` at ``budget_255``/255 on the session's model.

    Args:
        session: the loaded model and limits.
        uploads: the uploaded files, in page order.
        choice, budget_255, steps, seed: see :meth:`Session.config`.
        on_step: called as ``on_step(photo_index, photo_count, name, step, steps)`` before each
            photo (step 0) and after every PGD step.
        stopped: polled after every step; when it returns True the run raises :class:`Cancelled`
            and the photo being protected is not written.

    Raises:
        InputError: no uploads, too many, or a bad budget/choice (nothing is written).
        Cancelled: the run was stopped.
    """
    if not uploads:
        raise InputError("no photo given: drop one or several photos in the upload box first")
    if len(uploads) > session.limits.max_photos:
        raise InputError(
            f"{len(uploads)} photos in one run is over this server's limit of "
            f"{session.limits.max_photos}; protect them in smaller groups"
        )
    cfg = session.config(choice, budget_255, steps, seed)
    session.prune()
    folder = session.out_root / (time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:8])
    results: list[PhotoResult] = []
    taken: set[str] = set()
    report = on_step or (lambda *a: None)

    def callback(ev: Any, i: int, name: str) -> None:
        if stopped():
            raise Cancelled()
        report(i, len(uploads), name, ev.step, ev.steps)

    for i, up in enumerate(uploads):
        if stopped():
            raise Cancelled()
        report(i, len(uploads), up.name, 0, cfg.loop.steps)
        try:
            loaded = read(up.path, session.limits.max_pixels)
        except StillguardError as e:
            results.append(PhotoResult(up.name, "failed", error=user_message(e, up)))
            continue
        stem = _unique(safe_stem(up.name), taken)
        png = folder / f"{stem}.protected.png"
        item = BatchItem(up.path, png, png.with_suffix(".json"))
        try:
            with session.lock:
                done = protect_one(
                    item, cfg, session.adapter, loaded,
                    callback=lambda ev, i=i, n=up.name: callback(ev, i, n),
                    extra={"input": {**loaded.info, "path": up.name}, "front": "web"},
                )  # fmt: skip
        except (Cancelled, WriteError):
            raise  # stopped, or the server's disk is full: not this photo's fault
        except (StillguardError, RuntimeError, MemoryError) as e:  # e.g. out of memory: say so
            results.append(PhotoResult(up.name, "failed", error=user_message(e, up)))
            continue
        res = done.protected
        session.record(choice, res.seconds, len(res.losses))
        side = item.sidecar
        facts = json.loads(side.read_text())
        metrics = {k: facts.get(k) for k in ("psnr", "ssim", "linf_255")}
        metrics.update(seconds=round(res.seconds, 2), size=list(loaded.info["size"]))
        shown = previews(res.original, res.image, folder / "preview", stem)
        results.append(PhotoResult(up.name, "ok", png=png, sidecar=side, previews=shown,
                                   metrics=metrics))  # fmt: skip
    ok = [r for r in results if r.status == "ok"]
    downloads: list[Path] = []
    if len(ok) == 1:
        downloads = [ok[0].png, ok[0].sidecar]  # type: ignore[list-item]
    elif ok:
        downloads = [folder / ZIP_NAME]
        with zipfile.ZipFile(downloads[0], "w", compression=zipfile.ZIP_STORED) as z:
            for r in ok:
                z.write(r.png, r.png.name)  # type: ignore[union-attr]
                z.write(r.sidecar, r.sidecar.name)  # type: ignore[union-attr]
    return RunResult(results, downloads, folder if ok else None,
                     round(cfg.loop.eps * 255), session.demo)  # fmt: skip
