"""What a bench writes: per-cell media, the table (Markdown, CSV, JSON) and an HTML report.

Every file is written atomically. The report (``report/index.html``, relative links only, no
scripts) shows the table, one bar chart per metric (a bar per method and attack, coloured by
attack, one panel per target) and, per case (target x method x attack), a frame strip of the first photo and seed: the
clean video above, the protected video after the attack below. Frames are subsampled to at most 8
and enlarged (nearest) to at least 64 px, so toy videos stay visible.
"""

from __future__ import annotations

import csv
import hashlib
import html
import io
import json
import math
import re
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...files import atomic_write_bytes
from ...measure import media
from ...measure.report import _CSS, _fig, _figure, _html_table
from .table import aggregate, columns, fmt, markdown

MAX_FRAMES = 8
_PALETTE = ("#d62728", "#1f77b4", "#2ca02c", "#9467bd", "#ff7f0e", "#8c564b", "#17becf", "#7f7f7f")


def _png_bytes(image: Tensor, scale: int = 1) -> bytes:
    from PIL import Image

    from ...tensors import to_uint8

    buf = io.BytesIO()
    Image.fromarray(media.upscale(to_uint8(image), scale)).save(buf, format="PNG")
    return buf.getvalue()


def _strip(clean: Tensor, video: Tensor) -> Tensor:
    c, v = (x[0] if x.ndim == 5 else x for x in (clean, video))
    idx = torch.linspace(0, c.shape[0] - 1, min(MAX_FRAMES, c.shape[0])).round().long()
    return media.frame_strip([c[idx], v[idx]])


def write_cell_media(folder: Path, stem: str, prot: Tensor, videos: dict[str, Tensor],
                     attacks: list[str]) -> None:  # fmt: skip
    """The protected 8-bit PNG and one strip per attack (before the cell's record)."""
    atomic_write_bytes(folder / f"{stem}.protected.png", _png_bytes(prot))
    h = videos["clean"].shape[-2]
    for a in attacks:
        strip = _strip(videos["clean"], videos[a])
        name = f"{stem}.{_attack_file(a)}.strip.png"
        atomic_write_bytes(folder / name, _png_bytes(strip, media.scale_for(h, 64)))


def safe(name: str) -> str:
    """A file-name-safe form of a label (with a short hash when characters were replaced)."""
    clean = re.sub(r"[^A-Za-z0-9._-]+", "_", name)
    return clean if clean == name else f"{clean}-{hashlib.sha1(name.encode()).hexdigest()[:6]}"


def _attack_file(a: str) -> str:
    return safe(a)


def _csv(rows: list[dict[str, Any]]) -> bytes:
    keys = ["target", "method", "attack", "n", "photos"] + [k for k, _ in columns(rows)]
    keys += ["too_small"]
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=keys, extrasaction="ignore")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if isinstance(r.get(k), float) and math.isnan(r[k]) else r.get(k, ""))
                    for k in keys})  # fmt: skip
    return buf.getvalue().encode()


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {k: _jsonable(v) for k, v in x.items()}
    if isinstance(x, list):
        return [_jsonable(v) for v in x]
    return None if isinstance(x, float) and not math.isfinite(x) else x


def write_results(out: Path, spec: Any, photos: list, cells: list[dict], record: dict) -> dict:
    """``table.md``/``.csv``/``.json`` and ``report/index.html`` from every cell record."""
    from .table import __doc__ as definitions

    rows = aggregate(cells, spec.attacks)
    md = markdown(rows)
    head = f"# stillguard bench\n\nCommand: `{record['command']}`  \nDate: {record['date']}  \n"
    head += "Versions: " + ", ".join(f"{k} {v}" for k, v in record["versions"].items()) + "  \n"
    head += f"Face metrics: {record['face_metrics']}\n\n"
    atomic_write_bytes(out / "table.md", (head + md + "\n").encode())
    atomic_write_bytes(out / "table.csv", _csv(rows))
    doc = {"bench": record, "definitions": definitions, "rows": rows}
    atomic_write_bytes(
        out / "table.json", json.dumps(_jsonable(doc), indent=1, allow_nan=False).encode()
    )
    report = _report(out, rows, cells, spec, record)
    return {"out": str(out), "rows": rows, "cells": len(cells), "table": str(out / "table.md"),
            "report": str(report)}  # fmt: skip


def _bars(rows: list[dict], key: str, title: str, path: Path) -> Path:
    targets = list(dict.fromkeys(r["target"] for r in rows))
    fig = _figure(max(6.0, 1.2 * len(rows) / max(1, len(targets)) + 2), 2.6 * len(targets))
    for i, t in enumerate(targets):
        ax = fig.add_subplot(len(targets), 1, i + 1)
        rs = [r for r in rows if r["target"] == t]
        ys = [r.get(key, math.nan) for r in rs]
        attacks = list(dict.fromkeys(r["attack"] for r in rs))
        colors = [_PALETTE[attacks.index(r["attack"]) % len(_PALETTE)] for r in rs]
        ax.bar(range(len(rs)), [0 if math.isnan(y) else y for y in ys], color=colors)
        ax.set_xticks(range(len(rs)), [f"{r['method']}\n{r['attack']}" for r in rs], fontsize=7)
        ax.set_title(f"{title}: {t}", fontsize=9)
        if key in ("motion", "tssim"):
            ax.axhline(1.0, color="black", lw=0.8, ls=":")
        ax.grid(alpha=0.3, axis="y")
    fig.tight_layout()
    data = io.BytesIO()
    fig.savefig(data, format="png")
    atomic_write_bytes(path, data.getvalue())
    return path


def _report(out: Path, rows: list[dict], cells: list[dict], spec: Any, record: dict) -> Path:
    rep = out / "report"
    rep.mkdir(exist_ok=True)
    cols = columns(rows)
    table = _html_table(["target", "method", "attack", "n"] + [h for _, h in cols],
                        [[r["target"], r["method"], r["attack"], str(r["n"])] + [fmt(r, k) for k, _ in cols]
                         for r in rows])  # fmt: skip
    body = [f"<h2>Table</h2>{table}<p>Definitions: <a href='../table.json'>table.json</a>.</p>"]
    charts = []
    for key, title in cols:
        if key in ("seconds", "peak_mib") or all(math.isnan(r.get(key, math.nan)) for r in rows):
            continue
        charts.append(_fig(_bars(rows, key, title, rep / f"bar-{key}.png").name, title))
    body.append("<h2>Metrics</h2>" + "".join(charts))
    first = {(c["target"], c["method"]): c["photo"] for c in reversed(cells)}
    strips = []
    for (t, m), photo in first.items():
        for a in spec.attacks:
            src = (
                Path("..")
                / "cells"
                / safe(t)
                / safe(m)
                / f"{safe(photo)}.{_attack_file(a)}.strip.png"
            )
            cap = (
                f"{t} · {m} · {a} · {photo}, seed {spec.seeds[0]}: clean (top), protected (bottom)"
            )
            strips.append(_fig(src.as_posix(), cap))
    body.append("<h2>Frames</h2>" + "".join(strips))
    details = html.escape(json.dumps(_jsonable(record), indent=1))
    page = (f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>stillguard bench'
            f"</title><style>{_CSS}</style></head><body><h1>stillguard bench</h1>"
            f"<p>Command: <code>{html.escape(record['command'])}</code></p>" + "\n".join(body)
            + f"<details><summary>run record</summary><pre>{details}</pre></details></body></html>\n")  # fmt: skip
    atomic_write_bytes(rep / "index.html", page.encode())
    return rep / "index.html"
