"""The evaluation as an aligned text table (what ``stillguard verify`` prints)."""

from __future__ import annotations

import math
from typing import Any

COLUMNS = (  # (summary key, header); "a→b" pairs show clean then subject
    ("clean_flow|flow", "flow px/frame clean→video"),
    ("motion_ratio", "motion ratio"),
    ("clean_dissim|dissim", "1-SSIM clean→video"),
    ("dissim_ratio", "dissim ratio"),
    ("video_ssim", "SSIM to clean video"),
    ("fidelity_drop", "frame-0 SSIM drop"),
    ("verdict", "verdict"),
)
IMP = (("psnr", "PSNR dB"), ("ssim", "SSIM"), ("linf_255", "L∞ ×255"), ("l2", "L2"))


# ------------------------------------------------------------------------------------ text
def num(v: Any, digits: int = 3) -> str:
    if isinstance(v, str):
        return v
    if v is None or (isinstance(v, float) and math.isnan(v)):
        return "n/a"
    if isinstance(v, float) and math.isinf(v):
        return "inf" if v > 0 else "-inf"
    return f"{v:.{digits}f}"


def cell(row: dict[str, Any], key: str) -> str:
    if key == "verdict":
        return row["verdict"]
    if "|" in key:
        a, b = key.split("|")
        return f"{num(row[a])}→{num(row[b])}"
    s = num(row[key])
    std = row.get(key + "_std")
    if row.get("seeds", 1) > 1 and std is not None and math.isfinite(std):
        s += f" ±{std:.3f}"
    return s


def learned(report: Any) -> tuple[list[str], list[str]]:
    """Learned metric names with a value, and those reported as not available."""
    names = sorted({k for d in report.imperceptibility.values() for k in d} - {k for k, _ in IMP})
    have = [
        k
        for k in names
        if any(not isinstance(d.get(k), str) for d in report.imperceptibility.values())
    ]
    return have, [k for k in names if k not in have]


def imp_rows(report: Any) -> tuple[list[str], list[list[str]]]:
    names = learned(report)[0]
    head = ["image"] + [h for _, h in IMP] + names
    rows = []
    for subject, d in report.imperceptibility.items():
        vals = [num(d.get(k), 2 if k in ("psnr", "linf_255") else 4) for k, _ in IMP]
        rows.append([subject] + vals + [num(d.get(k), 4) for k in names])
    return head, rows


def missing_note(report: Any) -> str:
    missing = learned(report)[1]
    if not missing:
        return ""
    return (
        f"{', '.join(missing)}: not available (need local weights: load one with "
        "stillguard.encoders, e.g. Lpips.from_folder(DIR), and register it with "
        "stillguard.measure.metrics.register_learned_metric, or use stillguard bench --lpips DIR; "
        "nothing is downloaded)"
    )


def align(head: list[str], rows: list[list[str]]) -> list[str]:
    widths = [max(len(r[i]) for r in [head, *rows]) for i in range(len(head))]
    return [
        "  ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
        for r in [head, *rows]
    ]


def caveats(report: Any) -> list[str]:
    notes = []
    if not report.config.get("real_model", False):
        notes.append(
            "NOTE: target is the tiny/toy model, not a real I2V model: these numbers say nothing "
            "about protection against real models."
        )
    by = {(s["transform"], s["subject"]): s["verdict"] for s in report.summary}
    for t, v in report.verdicts.items():
        if v != "not protected" and by.get((t, "noise")) == v:
            notes.append(
                f"NOTE: under {t} the random-noise baseline is also '{v}': the effect is not "
                "specific to the protection."
            )
    return notes


def text_table(report: Any) -> str:
    """The report as aligned plain text (what ``Report.table()`` returns)."""
    cfg = report.config
    tgt = cfg.get("target", {})
    seeds = ", ".join(str(s) for s in cfg.get("seeds", []))
    lines = [
        f"stillguard evaluation: {tgt.get('target', '?')} (model {tgt.get('model', '?')}), "
        f"seeds {seeds}, eps {num(cfg.get('eps_255', math.nan), 1)}/255",
        "",
        "Imperceptibility (vs the 8-bit original):",
        *align(*imp_rows(report)),
        *([missing_note(report)] if missing_note(report) else []),
        "",
        "Videos (mean ±std over seeds; ratios = video / clean video of the same seed):",
    ]
    head = ["transform", "image"] + [h for _, h in COLUMNS]
    rows = [
        [s["transform"], s["subject"]] + [cell(s, k) for k, _ in COLUMNS] for s in report.summary
    ]
    lines += align(head, rows)
    lines += ["", "Verdict thresholds (applied to the means):"]
    lines += [f"  {name + ':':15s}{rule}" for name, rule in cfg.get("thresholds", {}).items()]
    notes = caveats(report)
    return "\n".join(lines + ([""] + notes if notes else []))


# ----------------------------------------------------------------------------------- plots
