"""Run a bench: every photo x method x target protected once, attacked, generated and measured.

Order of work: check everything first (photos decoded, names resolved, models on this machine,
encoder folders loaded, the output folder writable; a bad input stops here with one line and
nothing written) -> write ``bench.json`` (the exact command, versions, the spec) -> per target, load
the model once; per photo, its clean videos are generated once and shared by every method; per
method, one cell (:mod:`.cell`) -> ``table.md``/``.csv``/``.json`` and ``report/index.html``.

Resume: a cell's record is written last and atomically (``cells/<target>/<method>/<photo>.json``,
after its protected PNG and frame strips), with a key of everything it depends on; a rerun of the
same command skips every cell whose record exists with the same key, so a killed bench loses at
most the cell it was in. The final files are rewritten from all the records.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ...errors import StillguardError
from ...files import write_json
from .configs import all_configs
from .outputs import safe
from .photos import Photo
from .spec import BenchSpec

log = logging.getLogger(__name__)


def load_encoders(spec: BenchSpec) -> dict[str, Any]:
    """Every encoder whose folder was given (``{"clip": DIR, ...}``), loaded; errors name the option."""
    import torch

    from ...encoders import ENCODERS

    out = {}
    for kind, folder in spec.encoders.items():
        if folder:
            out[kind] = ENCODERS[kind].from_folder(folder, device=spec.device, dtype=torch.float32)
    return out


def check(spec: BenchSpec, photos: list[Photo], out: Path) -> dict:
    """Everything before any write: configs, models, output folder. Returns the configs."""
    from ..inputs import check_writable
    from ..models import check_model_available

    configs = all_configs(spec)
    for name, model in spec.targets:
        try:
            check_model_available(model)
        except StillguardError as e:  # protect's advice names --model; the bench's is --targets
            raise type(e)(f"{e} (in stillguard bench: --targets {name}:DIR)") from None
    check_writable(out)
    if (out / "bench.json").exists():
        try:
            json.loads((out / "bench.json").read_text())
        except (OSError, ValueError):
            raise StillguardError(f"{out}/bench.json is unreadable; choose another --out") from None
    return configs


def cell_key(spec: BenchSpec, cfg: Any, photo: Photo) -> str:
    body = {"bench": spec.key(), "config": cfg.hash(), "photo": photo.sha256}
    return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()[:20]


def run_bench(
    spec: BenchSpec,
    photos: list[Photo],
    out: str | Path,
    *,
    command: str = "",
    events: Callable[[dict[str, Any]], None] | None = None,
) -> dict[str, Any]:
    """Run (or resume) the bench into ``out``; return ``{"rows", "cells", "out", ...}``.

    ``events`` gets ``{"kind": "cell"|"step"|"video"|"skip", "done", "total", ...}`` for progress.
    """
    from ...measure.extra import video_metrics
    from ...measure.faces import photo_identity
    from .cell import run_cell
    from .outputs import write_cell_media, write_results  # noqa: F811

    out = Path(out)
    configs = check(spec, photos, out)
    encoders = load_encoders(spec)
    from ...encoders import faces

    face_note = faces.available()
    out.mkdir(parents=True, exist_ok=True)
    record = run_record(spec, photos, command, face_note)
    write_json(out / "bench.json", record)
    emit = events or (lambda ev: None)
    total, done, cells = len(configs) * len(photos), 0, []
    gen = {"num_frames": spec.num_frames, "num_inference_steps": spec.num_inference_steps}
    face_kw = {"upsample": spec.face_upsample, "detector": spec.face_detector,
               "min_side": spec.face_min_side}  # fmt: skip
    for target in spec.targets:
        tlabel = f"{target[0]}:{target[1]}"
        adapters: dict[str, Any] = {}  # by dtype and target options (the planner may vary them)
        for photo in photos:
            cleans: dict[str, dict] = {}  # per adapter: its clean videos of this photo
            hook = None
            for method in spec.methods:
                cfg = configs[(tlabel, method.label)]
                path = (
                    out / "cells" / safe(tlabel) / safe(method.label) / f"{safe(photo.name)}.json"
                )
                key = cell_key(spec, cfg, photo)
                rec = _done(path, key)
                if rec is None:
                    akey = json.dumps([cfg.dtype, cfg.target_options], sort_keys=True, default=str)
                    if akey not in adapters:
                        adapters[akey] = _load(target, cfg, emit)
                    adapter = adapters[akey]
                    clean = cleans.setdefault(akey, {})
                    if hook is None:
                        hook = video_metrics(
                            photo.image, encoders, face=face_note is None, **face_kw
                        )
                    emit({"kind": "start", "done": done, "total": total, "target": tlabel,
                          "method": method.label, "photo": photo.name, "steps": cfg.loop.steps})  # fmt: skip
                    rec, prot, videos = run_cell(
                        photo, adapter, cfg, spec.attacks, spec.seeds, hook=hook,
                        clean_videos=clean, lpips=encoders.get("lpips"),
                        face_identity=(lambda a, b: photo_identity(
                            a, b, upsample=spec.face_upsample, model=spec.face_detector))
                        if face_note is None else None,
                        gen=gen, on_step=lambda ev: emit({"kind": "step", "step": ev.step,
                                                          "steps": ev.steps, "loss": ev.loss}),
                    )  # fmt: skip
                    rec.update(target=tlabel, method=method.label, key=key, config=cfg.to_dict())
                    write_cell_media(path.parent, safe(photo.name), prot, videos, spec.attacks)
                    write_json(path, rec)  # last: the cell counts as done only now
                else:
                    emit(
                        {
                            "kind": "skip",
                            "target": tlabel,
                            "method": method.label,
                            "photo": photo.name,
                        }
                    )
                cells.append(rec)
                done += 1
                emit({"kind": "cell", "done": done, "total": total})
    result = write_results(out, spec, photos, cells, record)
    log.info("bench written to %s", out)
    return result


def _done(path: Path, key: str) -> dict[str, Any] | None:
    try:
        rec = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    return rec if isinstance(rec, dict) and rec.get("key") == key else None


def _load(target: tuple[str, str], cfg: Any, emit: Callable) -> Any:
    from ..models import load_target

    emit({"kind": "load", "target": f"{target[0]}:{target[1]}"})
    return load_target(target[0], target[1], cfg.device, cfg.dtype, cfg.target_options)


def run_record(spec: BenchSpec, photos: list[Photo], command: str, face_note: str | None) -> dict:
    import platform

    from ...versions import CORE, package_versions

    pkgs = (*CORE, "transformers", "numpy", "opencv-python-headless", "scikit-image", "dlib-bin",
            "face-recognition-models")  # fmt: skip
    return {
        "command": command,
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "python": platform.python_version(),
        "versions": package_versions(pkgs, skip_missing=True),
        "spec": spec.to_dict(),
        "photos": [
            {
                "name": p.name,
                "source": p.source,
                "sha256": p.sha256,
                "size": list(p.image.shape[-2:]),
            }
            for p in photos
        ],  # fmt: skip
        "face_metrics": face_note or "dlib (dlib-bin + face-recognition-models)",
    }
