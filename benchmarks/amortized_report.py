"""Aggregates and the Markdown of ``benchmarks/amortized.py`` (``docs/amortized.md``).

Aggregates are over (photo, seed) pairs: a ratio is the mean of per-pair ratios (as in
``docs/efficacy.md``), given as mean +- population std and the median. Effect = 1 - motion ratio
(1 = frozen, 0 = no effect). Hand-written text between the ``NOTES`` markers of an existing
``amortized.md`` is kept when the file is regenerated.
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np

NOTES = ("<!-- notes: kept when regenerated -->", "<!-- /notes -->")
METRICS = ("motion_ratio", "dissim_ratio", "input_fidelity_drop", "video_ssim")


def _stat(vals: list[float]) -> dict[str, float]:
    a = np.array([v for v in vals if v is not None and math.isfinite(v)], dtype=np.float64)
    if not a.size:
        return {"mean": math.nan, "std": math.nan, "median": math.nan, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std()), "median": float(np.median(a)),
            "n": int(a.size)}  # fmt: skip


def summarise(doc: dict[str, Any]) -> dict[str, Any]:
    """Per variant: seconds per photo, loss ratio, and per (model, transform) the metrics."""
    out: dict[str, Any] = {}
    for label in doc["variants"]:
        recs = [r for r in doc["records"] if r["variant"] == label]
        if not recs:
            continue
        s: dict[str, Any] = {
            "on": recs[0]["on"],
            "seconds": _stat([r["protect_seconds"] for r in recs]),
            "linf_255_max": max(r["linf_255"] for r in recs),
            "loss_ratio": _stat([r["loss"] / r["loss_clean"] for r in recs]),
            "evals": {},
        }
        for model in recs[0]["evals"]:
            rows = [row for r in recs for row in r["evals"][model]]
            s["evals"][model] = {
                t: {k: _stat([row[k] for row in rows if row["transform"] == t]) for k in METRICS}
                for t in sorted({row["transform"] for row in rows})
            }
        out[label] = s
    out["goals"] = goals(doc, out)
    out["diagnostics"] = diagnostics(doc)
    return out


def diagnostics(doc: dict[str, Any]) -> dict[str, Any]:
    """Training-loss ratios per variant and toy, and how loss and motion go together per photo.

    ``loss_vs_motion``: Pearson correlation, over every (variant, photo) but noise, between the
    training-loss ratio on a toy and that toy's motion ratio (identity, mean over seeds).
    """
    diag = doc.get("diagnostics") or []
    if not diag:
        return {}
    by = {(d["variant"], d["image"]): d["train_loss_ratio"] for d in diag}
    out: dict[str, Any] = {"variants": {}, "loss_vs_motion": {}}
    for label in doc["variants"]:
        rows = [v for (lab, _), v in by.items() if lab == label]
        if rows:
            out["variants"][label] = {m: _stat([r[m] for r in rows]) for m in rows[0]}
    for model in ("cogvideox-toy", "wan-toy"):
        pairs = [(by[(r["variant"], r["image"])][model],
                  float(np.mean([e["motion_ratio"] for e in r["evals"][model]
                                 if e["transform"] == "identity"])))
                 for r in doc["records"] if r["on"] is not None
                 and (r["variant"], r["image"]) in by]  # fmt: skip
        if len(pairs) > 2:
            a = np.array(pairs)
            out["loss_vs_motion"][model] = {"r": float(np.corrcoef(a[:, 0], a[:, 1])[0, 1]),
                                            "n": len(pairs)}  # fmt: skip
    return out


def _effect(
    s: dict[str, Any], model: str = "cogvideox-toy", t: str = "identity", k: str = "mean"
) -> float:
    return 1 - s["evals"][model][t]["motion_ratio"][k]


def goals(doc: dict[str, Any], s: dict[str, Any]) -> list[dict[str, Any]]:
    """The issue's three goals, measured: speed-up, amortized share, refined share."""
    pgd = next((v for v in s if v.startswith("rollout-freeze PGD (")), None)
    am, ref = s.get("amortized"), s.get("amortized + refine 10")
    if pgd is None or am is None:
        return []
    p = s[pgd]
    rows = [{"goal": "speed: >= 100x fewer seconds per photo than PGD",
             "measured": p["seconds"]["mean"] / am["seconds"]["mean"], "need": 100.0, "unit": "x"}]  # fmt: skip
    for label, need in (("amortized", 0.8), ("amortized + refine 10", 1.0)):
        v = s.get(label)
        if v is None:
            continue
        for k in ("mean", "median"):
            share = _effect(v, k=k) / _effect(p, k=k) if _effect(p, k=k) > 0 else math.nan
            rows.append({"goal": f"effect: {label} >= {need:.0%} of PGD's (1 - motion ratio, "
                         f"{'means' if k == 'mean' else 'medians'})", "measured": share,
                         "need": need, "unit": "share", "primary": k == "mean"})  # fmt: skip
    del ref
    for r in rows:
        r["met"] = bool(r["measured"] >= r["need"]) if math.isfinite(r["measured"]) else False
    return rows


def _pm(st: dict[str, float], d: int = 3) -> str:
    if not st["n"]:
        return "—"
    return f"{st['mean']:.{d}f} ± {st['std']:.{d}f} ({st['median']:.{d}f})"


def markdown(doc: dict[str, Any], keep_from: Path | None = None) -> str:
    s = doc["summary"]
    lines = [
        "# Amortized protection: one forward pass against PGD",
        "",
        "Generated by `benchmarks/amortized.py` (tables and goals; do not edit them by hand). "
        "Every number below comes from ONE run of the command below: same machine, same process, "
        f"{doc['threads']} torch thread(s), one photo at a time. The machine is a shared, loaded "
        "2-core CPU: absolute seconds are noisy; ratios from the same run are what to read.",
        "",
        f"Command: `{doc['command']}`  ",
        f"Date: {doc['date']}; whole run {doc['seconds']:.0f} s.  ",
        f"Held-out photos: {', '.join(doc['images'])}; generation seeds {doc['seeds']}; "
        "L∞ 8/255 on the saved PNG.  ",
        "These are toy models: nothing here says anything about real image-to-video models.",
        "",
        "## Goals",
        "",
        "| goal | measured | need | status |",
        "|---|---|---|---|",
    ]
    for g in s["goals"]:
        unit = "x" if g["unit"] == "x" else ""
        val = f"{g['measured']:.0f}{unit}" if unit else f"{g['measured']:.0%}"
        need = f"{g['need']:.0f}x" if unit else f"{g['need']:.0%}"
        lines.append(f"| {g['goal']} | {val} | {need} | {'met' if g['met'] else '**not met**'} |")
    lines += ["", "## Seconds per photo and the method's loss", "",
              "| variant | computed on | s/photo (mean ± std (median)) | rollout-freeze loss, protected / clean | max L∞ ×255 on the PNG |",
              "|---|---|---|---|---|"]  # fmt: skip
    for label in doc["variants"]:
        if label not in s:
            continue
        v = s[label]
        on = {"cog": "CogVideoX toy", "pair": "toy pair (ensemble)", None: "no model"}[v["on"]]
        lines.append(
            f"| {label} | {on} | {_pm(v['seconds'], 3)} | {_pm(v['loss_ratio'])} | {v['linf_255_max']:.0f} |"
        )
    net = doc.get("network_ms", {})
    if net:
        lines += ["", "The protector's forward pass alone (median of 20): "
                  + ", ".join(f"{k} {v:.1f} ms" for k, v in net.items()) + "."]  # fmt: skip
    for model in ("cogvideox-toy", "wan-toy"):
        lines += ["", f"## Effect, evaluated on the {model}", "",
                  "motion ratio = protected / clean flow (1 = no effect, 0 = frozen); dissim ratio "
                  "the same for 1 − SSIM of consecutive frames; frames-to-input SSIM drop; SSIM of "
                  "the protected video to the clean one. mean ± std (median) over photo × seed.", "",
                  "| variant | transform | effect (1 − motion ratio) | motion ratio | dissim ratio | frames-to-input SSIM drop | SSIM to clean video |",
                  "|---|---|---|---|---|---|---|"]  # fmt: skip
        for label in doc["variants"]:
            ev = s.get(label, {}).get("evals", {}).get(model, {})
            for t, m in ev.items():
                eff = 1 - m["motion_ratio"]["mean"]
                lines.append(f"| {label} | {t} | {eff:.3f} | {_pm(m['motion_ratio'])} | "
                             f"{_pm(m['dissim_ratio'])} | {_pm(m['input_fidelity_drop'])} | "
                             f"{_pm(m['video_ssim'])} |")  # fmt: skip
    lines += _diagnostics_md(doc)
    old = keep_from.read_text() if keep_from is not None and keep_from.exists() else ""
    notes = (
        old[old.index(NOTES[0]) : old.index(NOTES[1]) + len(NOTES[1])]
        if NOTES[0] in old
        else "\n".join(NOTES)
    )
    return "\n".join(lines) + "\n\n" + notes + "\n"


def _diagnostics_md(doc: dict[str, Any]) -> list[str]:
    d = doc["summary"].get("diagnostics") or {}
    if not d:
        return []
    lines = ["", "## Diagnostics: the training loss on the held-out photos", "",
             "rollout-freeze with `unroll=2` (the loss the protectors were trained on), protected "
             "/ clean, 4 fixed draws, on the saved PNGs; mean ± std (median) over photos. The "
             "protectors' own final validation ratios (same loss, their validation photos): "
             + "; ".join(f"{k}: " + ", ".join(f"{m.split('/')[0]} {v:.3f}" for m, v in r.items())
                         for k, r in doc.get("validation_ratios", {}).items()) + ".", "",
             "| variant | on the CogVideoX toy | on the Wan toy |", "|---|---|---|"]  # fmt: skip
    for label, v in d["variants"].items():
        lines.append(f"| {label} | {_pm(v['cogvideox-toy'])} | {_pm(v['wan-toy'])} |")
    for model, c in d["loss_vs_motion"].items():
        lines.append(
            f"\nPer photo, training-loss ratio vs motion ratio on the {model}: Pearson "
            f"r = {c['r']:.2f} over {c['n']} (variant, photo) pairs (noise left out)."
        )
    return lines
