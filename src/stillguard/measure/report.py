"""The evaluation as a self-contained HTML page with its media (the text table: :mod:`.table`).

:func:`write_report` writes ``index.html`` and every file it shows into one folder, referenced by
relative names only (no external URLs, no scripts): the original, protected and noise images, the
perturbation amplified x10 around mid-gray, clean | protected | noise videos side by side (GIF, and
MP4 when imageio-ffmpeg is installed), a frame strip (one row per video), per-frame motion, motion
ratio per transform, the loss curve of a given ``Protected``, the metric tables with verdicts and
the thresholds they were judged by, plus ``report.json`` and ``table.txt``. Plots use matplotlib's
object API on an Agg canvas (no pyplot, so the process's backend is left alone). Small frames are
enlarged with nearest-neighbour scaling so pixels stay visible.
"""

from __future__ import annotations

import html
import math
import os
from pathlib import Path
from typing import Any

import torch

from stillguard.measure import media as video
from stillguard.measure import motion
from stillguard.measure.table import COLUMNS, caveats, cell, imp_rows, missing_note

SUBJECT_ORDER = ("clean", "protected", "noise")
_COLORS = {"clean": "#1f77b4", "protected": "#d62728", "noise": "#7f7f7f"}
_VERDICT_COLORS = {"frozen": "#1a7f37", "degraded": "#9a6700", "not protected": "#cf222e"}


def _figure(width: float = 6.0, height: float = 3.2) -> Any:
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=100)
    FigureCanvasAgg(fig)
    return fig


def _plot_motion(videos: dict[str, torch.Tensor], path: Path) -> Path:
    fig = _figure()
    ax = fig.add_subplot()
    for k in SUBJECT_ORDER:
        if k in videos:
            flow = motion.per_frame_flow(videos[k])[0]
            ax.plot(range(1, len(flow) + 1), flow, "o-", color=_COLORS[k], label=k)
    ax.set(xlabel="frame pair (t-1 → t)", ylabel="mean flow (px/frame)", title="Motion per frame")
    ax.set_ylim(bottom=0)
    ax.grid(alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path)
    return path


def _plot_ratios(summary: list[dict[str, Any]], path: Path) -> Path:
    from stillguard.measure.verdict import FROZEN_MOTION_RATIO

    labels = list(dict.fromkeys(s["transform"] for s in summary))
    fig = _figure(max(6.0, 0.9 * len(labels) + 2), 3.4)
    ax = fig.add_subplot()
    subjects = [k for k in ("protected", "noise") if any(s["subject"] == k for s in summary)]
    width = 0.8 / len(subjects)
    for j, k in enumerate(subjects):
        by = {s["transform"]: s for s in summary if s["subject"] == k}
        ys = [by[t]["motion_ratio"] if t in by else math.nan for t in labels]
        es = [by[t].get("motion_ratio_std", 0.0) if t in by else 0.0 for t in labels]
        es = [e if e is not None and math.isfinite(e) else 0.0 for e in es]
        xs = [i + (j - (len(subjects) - 1) / 2) * width for i in range(len(labels))]
        ax.bar(xs, ys, width, yerr=es, color=_COLORS[k], label=k, capsize=2)
    ax.axhline(1.0, color="black", lw=0.8, ls=":")
    ax.axhline(FROZEN_MOTION_RATIO, color="#1a7f37", lw=1, ls="--", label="frozen threshold")
    ax.set_xticks(range(len(labels)), labels, rotation=30, ha="right")
    top = max([1.0] + [s["motion_ratio"] for s in summary if math.isfinite(s["motion_ratio"])])
    ax.set_ylim(0, top * 1.3)
    ax.set(ylabel="motion ratio (video / clean)", title="Motion kept after each purification")
    ax.legend(fontsize=8, loc="upper center", ncol=3)
    fig.tight_layout()
    fig.savefig(path)
    return path


def _plot_losses(result: Any, path: Path) -> Path | None:
    losses = [float(v) for v in getattr(result, "losses", None) or []]
    if not losses:
        return None
    fig = _figure()
    ax = fig.add_subplot()
    ax.plot(range(1, len(losses) + 1), losses, color="#d62728", label="loss")
    terms = getattr(result, "terms", None) or []
    for name in sorted({k for t in terms for k in t}) if len(terms) == len(losses) else []:
        ax.plot(
            range(1, len(terms) + 1), [t.get(name, math.nan) for t in terms], lw=0.8, label=name
        )
    ax.set(xlabel="PGD step", ylabel="loss (minimised)", title="Protection loss")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path)
    return path


# ------------------------------------------------------------------------------------ html
_CSS = """body{font:15px/1.45 system-ui,sans-serif;max-width:1100px;margin:24px auto;padding:0 16px;
color:#1f2328}h1{font-size:24px}h2{font-size:19px;margin-top:28px;border-bottom:1px solid #d0d7de}
table{border-collapse:collapse;font-size:13px;margin:8px 0}td,th{border:1px solid #d0d7de;
padding:4px 8px;text-align:right}th{background:#f6f8fa}td:first-child,td:nth-child(2){text-align:left}
.warn{background:#fff8c5;border:1px solid #d4a72c;padding:8px 12px;border-radius:6px}
figure{display:inline-block;margin:6px 12px 6px 0;vertical-align:top}figcaption{font-size:13px;
color:#57606a}img{max-width:100%;height:auto}img.px{image-rendering:pixelated}td{white-space:nowrap}.v{font-weight:600}pre{background:#f6f8fa;
padding:8px;overflow:auto;font-size:12px}"""


def _fig(src: str, caption: str, width: int | None = None) -> str:
    w = f' width="{width}"' if width else ""
    return (
        f'<figure><img class="px" src="{html.escape(src)}"{w} alt="{html.escape(caption)}">'
        f"<figcaption>{html.escape(caption)}</figcaption></figure>"
    )


def _html_table(head: list[str], rows: list[list[str]], verdict_col: int | None = None) -> str:
    out = ["<table><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in head) + "</tr>"]
    for r in rows:
        cells = []
        for i, c in enumerate(r):
            style = ""
            if i == verdict_col:
                style = f' class="v" style="color:{_VERDICT_COLORS.get(c, "inherit")}"'
            cells.append(f"<td{style}>{html.escape(c)}</td>")
        out.append("<tr>" + "".join(cells) + "</tr>")
    return "\n".join(out + ["</table>"])


def write_report(
    report: Any, out_dir: str | os.PathLike[str], *, protected_result: Any = None
) -> Path:
    """Write ``index.html`` and its media into ``out_dir``.

    Args:
        report: a :class:`~stillguard.measure.evaluate.Report`.
        out_dir: folder (created).
        protected_result: the ``Protected`` the image came from, for the loss curve (optional).
    Returns:
        Path of ``index.html``.
    Shape:
        uses ``report.images`` ``(1,3,H,W)`` and ``report.videos`` ``(1,F,3,h,w)``.
    """
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    report.save(out)
    ims, vids, cfg = report.images, report.videos, report.config
    disp = 256
    figs = []
    for name in ("original", "protected", "noise"):
        if name in ims:
            video.write_png(ims[name], out / f"{name}.png")
            figs.append(_fig(f"{name}.png", name, disp))
    for name in ("protected", "noise"):
        if name in ims:
            diff = (0.5 + 10 * (ims[name] - ims["original"])).clamp(0, 1)
            video.write_png(diff, out / f"{name}_diff_x10.png")
            figs.append(_fig(f"{name}_diff_x10.png", f"{name} − original, ×10 around gray", disp))
    body = [f"<h2>Images</h2>{''.join(figs)}"]
    order = [k for k in SUBJECT_ORDER if k in vids]
    if order:
        vt, seed = cfg.get("video_transform", "identity"), cfg.get("seeds", [0])[0]
        side = video.side_by_side([vids[k] for k in order], gap=2)
        h = vids[order[0]].shape[-2]
        video.write_gif(side, out / "videos.gif", scale=video.scale_for(h, 160))
        mp4 = video.write_mp4(side, out / "videos.mp4", scale=video.scale_for(h, 160))
        strip = video.frame_strip([vids[s] for s in order])
        video.write_png(strip, out / "frames.png", scale=video.scale_for(h, 96))
        caption = f"{' | '.join(order)} (transform {vt}, seed {seed})"
        link = ' — <a href="videos.mp4">MP4</a>' if mp4 else ""
        body.append(f"<h2>Videos</h2>{_fig('videos.gif', caption)}{link}")
        body.append(_fig("frames.png", f"frames, rows top to bottom: {', '.join(order)}"))
        _plot_motion(vids, out / "motion.png")
        body.append(_fig("motion.png", "mean optical flow per frame pair"))
    _plot_ratios(report.summary, out / "ratios.png")
    body.append(_fig("ratios.png", "motion ratio per purification (mean ± std over seeds)"))
    if protected_result is not None and _plot_losses(protected_result, out / "loss.png"):
        body.append(_fig("loss.png", "protection loss per PGD step"))
    head = ["transform", "image"] + [hd for _, hd in COLUMNS]
    rows = [
        [s["transform"], s["subject"]] + [cell(s, k) for k, _ in COLUMNS] for s in report.summary
    ]
    body.insert(0, "<h2>Verdicts</h2>" + _html_table(head, rows, verdict_col=len(head) - 1))
    rules = "".join(
        f"<li><b>{html.escape(k)}</b>: {html.escape(v)}</li>" for k, v in cfg["thresholds"].items()
    )
    body.insert(1, f"<p>Thresholds, applied to the means over seeds:</p><ul>{rules}</ul>")
    note = f"<p>{html.escape(missing_note(report))}</p>" if missing_note(report) else ""
    body.insert(2, "<h2>Imperceptibility</h2>" + _html_table(*imp_rows(report)) + note)
    tgt = cfg.get("target", {})
    title = f"stillguard report: {tgt.get('target', '?')} ({tgt.get('model', '?')})"
    warn = "".join(f'<p class="warn">{html.escape(n)}</p>' for n in caveats(report))
    details = html.escape(report.to_json(indent=1))
    page = (
        f'<!doctype html><html lang="en"><head><meta charset="utf-8"><title>{html.escape(title)}'
        f"</title><style>{_CSS}</style></head><body><h1>{html.escape(title)}</h1>{warn}"
        + "\n".join(body)
        + '<h2>Data</h2><p><a href="report.json">report.json</a> · <a href="table.txt">table.txt'
        + f"</a></p><details><summary>configuration and all rows</summary><pre>{details}</pre>"
        + "</details></body></html>\n"
    )
    path = out / "index.html"
    path.write_text(page, encoding="utf-8")
    return path
