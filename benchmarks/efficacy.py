"""Efficacy study: do the protections stop the toy image-to-video model from animating held-out photos?

Usage (one command regenerates ``docs/efficacy.md`` and ``docs/efficacy.json``)::

    OMP_NUM_THREADS=2 python benchmarks/efficacy.py --model toy --out docs/
        [--quick] [--only vid-freeze,noise] [--ablation eps --ablation steps ...]
        [--no-headline] [--merge] [--transfer-model DIR] [--images N] [--seeds 0,1,2]
        [--ablation-method rollout-freeze] [--merge-from OTHER/efficacy.json]
        [--section NAME --supersede vid-freeze,anti-i2v]

Protocol, per method variant and held-out image: ``protect()`` with the method's defaults (budget
L-infinity 8/255, ``--steps`` PGD steps, default 100), ``Protected.save`` to an 8-bit PNG, then
``evaluate(original, png, adapter, seeds, transforms=(identity, jpeg:75, resize:0.75, blur:1.0))``
on the saved file. Aggregates are mean +- population std over all (image, seed) pairs; a ratio is
the mean of per-(image, seed) ratios, not a ratio of means.

Inputs the methods were not tuned on (the demo astronaut is not used): the bench's builtin
held-out set (``stillguard bench --photos builtin``): four scikit-image sample photos (chelsea,
coffee, rocket, camera as grey RGB), centre-cropped square and Lanczos-resized to 64x64 (the toy
model's native size), and four synthetic scenes from ``stillguard.toy.training.data``'s held-out
stream (never drawn in training) with data seed 7919 (training used seed 0).

What the bench does and this script does not need to: a methods x attacks table on any photos,
targets and models is ``stillguard bench`` (``docs/benchmark.md``); its headline protocol here is
``stillguard bench --photos builtin --seeds 0,1,2 --steps 100 --methods
vid-freeze,rollout-freeze,anti-i2v,noise --attacks none,jpeg75,resize:0.75,blur``. This script
keeps the research-only parts: the goals of the efficacy issue, the ablations (eps, steps, layers,
attention, unroll, spaces, EOT), the transfer section and merging side runs into one document.

Choices made here:
    * the same-budget noise baseline of ``evaluate`` (``noise_baseline=True``) is a deterministic
      image (fixed noise seed) per (image, eps), so it is generated once per (image, eps) and shared
      by every method at that eps instead of being regenerated identically for each method;
    * "fidelity drops by half" (Anti-I2V goal) is read as both: mean SSIM of the frames to the input
      image falls to at most half of the clean video's, and SSIM of the protected video to the
      clean one is at most 0.5 (clean vs itself is 1);
    * ``--merge`` keeps sections of an existing ``efficacy.json`` that this run did not produce;
      every section records the command, date and versions that measured it;
    * ablations use the defaults of ``--ablation-method`` (vid-freeze unless told) and change one
      thing; the 8/255, 100-step, rgb variant is the headline one and is computed once per run;
    * ``--merge-from OTHER.json`` folds in the sections of a run written elsewhere, so two slow
      sections can run side by side (one core each) and still end up in one table;
    * ``--supersede METHODS`` (with ``--section NAME``): the rows of those methods in the other
      sections were measured with older code; they stay in the report, marked, and the goals use
      section ``NAME``'s rows instead.
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import logging
import math
import platform
import re
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("efficacy")

TRANSFORMS = ("identity", "jpeg:75", "resize:0.75", "blur:1.0")
PURIFICATIONS = TRANSFORMS[1:]
HEADLINE = ("vid-freeze", "rollout-freeze", "anti-i2v", "noise")
#: the methods whose goal is a frozen video (the paper's and ours)
FREEZERS = ("vid-freeze", "rollout-freeze")
#: the methods whose goal is a video that loses the input's content
COLLAPSERS = ("anti-i2v", "rollout-collapse")
BASELINES = ("i2vguard", "photoguard", "advdm", "mist", "sds", "noise")
EOT = ("jpeg:75", "resize:0.75", "blur:1.0")
ABLATIONS = ("eps", "steps", "layers", "attention", "unroll", "spaces", "eot", "baselines")
#: per-(image, seed, transform) numbers kept from evaluate()'s rows
ROW_KEYS = tuple(
    "flow clean_flow dissim clean_dissim motion_ratio dissim_ratio video_ssim video_psnr "
    "psnr_first ssim_first clean_ssim_first fidelity_drop ssim_all clean_ssim_all".split()
)
METRICS = ROW_KEYS + ("input_fidelity_drop",)


# ------------------------------------------------------------------------------------ inputs
def held_out_images(n: int | None = None) -> list[tuple[str, str, torch.Tensor]]:
    """``(name, description, image)`` of the bench's held-out set (``stillguard bench --photos
    builtin``; :func:`stillguard.app.bench.photos.held_out`), natural and synthetic alternating.

    Shape:
        each image ``(1, 3, 64, 64)`` in [0, 1], 8-bit valued.
    """
    from stillguard.app.bench.photos import held_out

    return [(p.name, p.source, p.image) for p in held_out(n)]


# ---------------------------------------------------------------------------------- variants
def variant(
    label: str,
    method: str,
    *,
    eps: float = 8 / 255,
    steps: int = 100,
    space: str | None = None,
    options: dict | None = None,
    eot: tuple = (),
) -> dict[str, Any]:
    """The protect() settings of one table row (JSON-able).

    Options equal to the method's defaults and its default space are dropped, so a variant that
    only restates the defaults (``layers="all"``, ``space="rgb"``...) is the headline variant.
    """
    import dataclasses

    from stillguard.plugins import METHODS

    cls = METHODS.get(method)
    defaults = {f.name: f.default for f in dataclasses.fields(cls)}
    options = {k: v for k, v in (options or {}).items() if defaults.get(k, object()) != v}
    space = None if space == cls.default_space else space
    return {
        "label": label,
        "method": method,
        "eps_255": round(eps * 255, 4),
        "steps": steps,
        "space": space,
        "options": options,
        "eot": list(eot),
    }


def vkey(v: dict[str, Any], ctx: dict[str, Any]) -> str:
    """Stable id of a variant under an evaluation context (model, seeds, images)."""
    body = {k: v[k] for k in ("method", "eps_255", "steps", "space", "options", "eot")}
    raw = json.dumps({**body, **ctx}, sort_keys=True)
    return hashlib.sha1(raw.encode()).hexdigest()[:12]


def ablation_variants(
    name: str, steps: int, layer_names: list[str], method: str = "vid-freeze"
) -> list[dict[str, Any]]:
    """The rows of one ablation section (``method``'s defaults, one thing changed).

    ``steps`` is the run's default step count; the steps ablation uses 25/50/100/200 % of it.
    ``layers`` and ``attention`` exist for vid-freeze only; ``unroll`` compares vid-freeze's single
    timestep with 2 unrolled steps, and rollout-freeze's full sampler with a 2- and 5-step one.
    """
    vf, n = method, len(layer_names)
    if name in ("layers", "attention") and method != "vid-freeze":
        raise SystemExit(f"ablation {name!r} is about attention: use it with vid-freeze")
    if name == "eps":
        return [variant(f"eps {e}/255", vf, eps=e / 255, steps=steps) for e in (4, 8, 16)]
    if name == "steps":
        counts = [max(1, s * steps // 100) for s in (25, 50, 100, 200)]  # scaled by --steps
        return [variant(f"{s} steps", vf, steps=s) for s in counts]
    if name == "layers":
        specs = [
            ("all", "all"),
            (f"first half ({n // 2})", f"first:{max(1, n // 2)}"),
            (f"last half ({n - n // 2})", f"last:{max(1, n - n // 2)}"),
        ]
        return [variant(f"layers {a}", vf, steps=steps, options={"layers": s}) for a, s in specs]
    if name == "attention":
        modes = ("exact", "pooled", "sampled")
        return [variant(m, vf, steps=steps, options={"attention_mode": m}) for m in modes]
    if name == "unroll":
        ks = (0, 2) if method == "vid-freeze" else (0, 5, 2)
        return [variant(f"unroll {k}", vf, steps=steps, options={"unroll": k}) for k in ks]
    if name == "spaces":
        return [
            variant(f"space {s}", vf, steps=steps, space=s) for s in ("rgb", "lab", "dct", "dual")
        ]
    if name == "eot":
        return [
            variant("EOT off", vf, steps=steps),
            variant("EOT on (" + ", ".join(EOT) + ")", vf, steps=steps, eot=EOT),
        ]
    if name == "baselines":
        return [variant(m, m, steps=steps) for m in BASELINES]
    raise SystemExit(f"unknown ablation {name!r}: choose from {', '.join(ABLATIONS)}")


# --------------------------------------------------------------------------------- measuring
def _rows(report: Any, subject: str) -> list[dict[str, Any]]:
    out = []
    for r in report.rows:
        if r["subject"] != subject:
            continue
        row = {"transform": r["transform"], "seed": r["seed"]}
        row.update({k: float(r[k]) for k in ROW_KEYS})
        c = row["clean_ssim_all"]
        row["input_fidelity_drop"] = (c - row["ssim_all"]) / c if c > 1e-8 else math.nan
        out.append(row)
    return out


class Runner:
    """Protects and evaluates held-out images, caching results within one run."""

    def __init__(self, adapter: Any, images: list, seeds: list[int], work: Path) -> None:
        self.adapter, self.images, self.seeds, self.work = adapter, images, seeds, work
        self.results: dict[str, dict[str, Any]] = {}
        self._noise: dict[tuple[str, float], list[dict[str, Any]]] = {}
        self.ctx = {"model": adapter.describe(), "seeds": seeds, "images": [i[0] for i in images]}

    def run(self, v: dict[str, Any], eval_adapter: Any = None, tag: str = "") -> dict[str, Any]:
        """Per-image records and the aggregate of one variant (cached by its settings)."""
        from stillguard import evaluate, protect, save_protected

        key = vkey(v, self.ctx) + tag
        if key in self.results:
            return self.results[key]
        target = eval_adapter or self.adapter
        eps = v["eps_255"] / 255
        records = []
        for name, _, img in self.images:
            png = self.work / f"{vkey(v, self.ctx)}-{name}.png"
            t0 = time.perf_counter()
            if not png.exists() or not tag:
                p = protect(
                    img,
                    None if v["method"] == "noise" else self.adapter,
                    v["method"],
                    eps=eps,
                    steps=v["steps"],
                    space=v["space"],
                    eot=tuple(v["eot"]),
                    method_options=v["options"],
                    seed=0,
                )
                save_protected(p, png)
                orig = p.original
                report = p.config.get("method_report", {})
            else:
                orig, report = torch.round(img * 255) / 255, {}
            t_prot = time.perf_counter() - t0
            nkey = (name + tag, eps)
            t0 = time.perf_counter()
            rep = evaluate(
                orig,
                png,
                target,
                seeds=self.seeds,
                transforms=TRANSFORMS,
                eps=eps,
                noise_baseline=nkey not in self._noise,
            )
            t_eval = time.perf_counter() - t0
            if nkey not in self._noise:
                self._noise[nkey] = _rows(rep, "noise")
            imp = rep.imperceptibility["protected"]
            rec = {
                "image": name,
                "protect_seconds": round(t_prot, 2),
                "eval_seconds": round(t_eval, 2),
                "psnr": imp["psnr"],
                "ssim": imp["ssim"],
                "linf_255": int(round(imp["linf_255"])),
                "rows": _rows(rep, "protected"),
                "noise_rows": self._noise[nkey],
            }
            if report.get("terms"):  # Anti-I2V's per-term diagnostic (gradient share, agreement)
                rec["terms"] = report["terms"]
                rec["terms_skipped"] = report.get("terms_skipped", {})
            records.append(rec)
            idm = np.mean([r["motion_ratio"] for r in rec["rows"] if r["transform"] == "identity"])
            log.info(
                "%s / %s: protect %.1fs eval %.1fs, identity motion ratio %.3f",
                v["label"],
                name,
                t_prot,
                t_eval,
                idm,
            )
        agg = aggregate(records)
        for rec in records:  # the shared noise rows live on in the aggregate only
            del rec["noise_rows"]
        res = {"key": key, "variant": v, "context": self.ctx, "images": records, "aggregate": agg}
        if tag:
            res["context"] = {**self.ctx, "evaluated_on": target.describe()}
        self.results[key] = res
        return res


def _stat(vals: list[float]) -> dict[str, float | int]:
    a = np.array([x for x in vals if x is not None and math.isfinite(x)], dtype=np.float64)
    if not a.size:
        return {"mean": math.nan, "std": math.nan, "n": 0}
    return {"mean": float(a.mean()), "std": float(a.std()), "n": int(a.size)}


def aggregate(records: list[dict[str, Any]]) -> dict[str, Any]:
    """Mean +- std over (image, seed) per subject and transform, plus image-level stats.

    Returns ``{"protected"|"noise": {transform: {metric: {mean, std, n}}}, "image": {...}}``.
    """
    out: dict[str, Any] = {}
    for subject, field in (("protected", "rows"), ("noise", "noise_rows")):
        rows = [r for rec in records for r in rec[field]]
        out[subject] = {
            t: {k: _stat([r[k] for r in rows if r["transform"] == t]) for k in METRICS}
            for t in TRANSFORMS
        }
    keys = ("psnr", "ssim", "linf_255", "protect_seconds", "eval_seconds")
    out["image"] = {k: _stat([rec[k] for rec in records]) for k in keys}
    return out


# ------------------------------------------------------------------------------------- goals
def _find(doc: dict, method: str, eps_255: float) -> dict | None:
    """The default-settings result of ``method`` at ``eps_255``: the run's default steps, default
    space, no options, no EOT, evaluated on the protecting model; sections searched in order."""
    for sec in doc["sections"].values():
        for key in sec["keys"]:
            res = doc["results"][key]
            v = res["variant"]
            if v["method"] in sec.get("superseded", ()):  # older defaults: a newer section has it
                continue
            if (
                v["method"] == method
                and math.isclose(v["eps_255"], eps_255)
                and v["steps"] == sec["run"]["steps"]
                and not v["options"]
                and v["space"] is None
                and not v["eot"]
                and "evaluated_on" not in res["context"]
            ):
                return res
    return None


def goals(doc: dict[str, Any]) -> list[dict[str, Any]]:
    """PASS/FAIL (or "not run") of each goal of the issue, from the aggregated means."""

    def m(res: dict | None, t: str, k: str, subject: str = "protected") -> float:
        return res["aggregate"][subject][t][k]["mean"] if res else math.nan

    def goal(text: str, res: dict | None, checks: list[tuple[str, float, str, float]]) -> dict:
        if res is None:
            return {"goal": text, "measured": "not run", "status": "NOT RUN"}
        ok = all(
            (val <= thr if op == "<=" else val >= thr) and math.isfinite(val)
            for _, val, op, thr in checks
        )
        shown = ", ".join(f"{name} {val:.3f}" for name, val, _, _ in checks)
        return {"goal": text, "measured": shown, "status": "PASS" if ok else "FAIL"}

    out = []
    for method in FREEZERS:
        for eps in (8, 4):
            r = _find(doc, method, eps)
            checks = [(k, m(r, "identity", k + "_ratio"), "<=", 0.10) for k in ("motion", "dissim")]
            text = f"{method} {eps}/255, identity: motion and dissim ratio <= 0.10"
            out.append(goal(text, r, checks))
        r = _find(doc, method, 8)
        for t in PURIFICATIONS:
            checks = [("motion ratio", m(r, t, "motion_ratio"), "<=", 0.30)]
            out.append(goal(f"{method} 8/255 after {t}: motion ratio <= 0.30", r, checks))
    for method in COLLAPSERS:
        r = _find(doc, method, 8)
        checks = [
            ("frames-to-input SSIM drop", m(r, "identity", "input_fidelity_drop"), ">=", 0.5),
            ("SSIM to clean video", m(r, "identity", "video_ssim"), "<=", 0.5),
        ]
        text = f"{method} 8/255, identity: fidelity to input and to clean video halved"
        out.append(goal(text, r, checks))
    r = next((r for k in (*FREEZERS, "anti-i2v", "noise") if (r := _find(doc, k, 8))), None)
    checks = [("motion ratio", m(r, "identity", "motion_ratio", "noise"), ">=", 0.80)]
    out.append(goal("same-budget noise baseline 8/255, identity: motion ratio >= 0.80", r, checks))
    return out


# ------------------------------------------------------------------------------------ report
def _pm(s: dict[str, Any], digits: int = 3) -> str:
    if not s or not s["n"] or not math.isfinite(s["mean"]):
        return "n/a"
    return f"{s['mean']:.{digits}f} ± {s['std']:.{digits}f}"


def _median(res: dict, transform: str, key: str = "motion_ratio") -> str:
    """Median over (image, seed) pairs of a protected-video metric (robust to near-still scenes,
    whose ratios to a ~0 clean motion are large and noisy)."""
    vals = [r[key] for rec in res["images"] for r in rec["rows"] if r["transform"] == transform]
    vals = [v for v in vals if v is not None and math.isfinite(v)]
    return f"{float(np.median(vals)):.3f}" if vals else "n/a"


def _num(x: float | None, digits: int) -> str:
    return "n/a" if x is None or not math.isfinite(x) else f"{x:.{digits}f}"


def _headline_md(doc: dict, sec: dict) -> list[str]:
    results = [doc["results"][k] for k in sec["keys"]]
    labels = sec["labels"]
    lines = [
        "| method | transform | clean flow px/frame | motion ratio | median motion ratio | "
        "dissim ratio | SSIM to clean video | frame-0 SSIM (clean → protected) | "
        "frames-to-input SSIM drop | n |",
        "|" + "---|" * 10,
    ]
    rows = [(lab, r["aggregate"]["protected"], r) for lab, r in zip(labels, results, strict=True)]
    if results:
        noise = results[0]["aggregate"]["noise"]
        rows.append(("same-budget noise (evaluate baseline)", noise, None))
    for name, agg, res in rows:
        for t in TRANSFORMS:
            a = agg[t]
            f0 = f"{a['clean_ssim_first']['mean']:.3f} → {a['ssim_first']['mean']:.3f}"
            med = _median(res, t) if res else "n/a"
            lines.append(
                f"| {name} | {t} | {_pm(a['clean_flow'], 2)} | {_pm(a['motion_ratio'])} | {med} | "
                f"{_pm(a['dissim_ratio'])} | "
                f"{_pm(a['video_ssim'])} | {f0} | {_pm(a['input_fidelity_drop'])} | "
                f"{a['motion_ratio']['n']} |"
            )
    lines += [
        "",
        "Imperceptibility (protected PNG vs 8-bit original) and wall time per image; the first "
        "method's evaluate time includes the shared noise-baseline videos.",
        "",
        "| method | PSNR dB | SSIM | L∞ ×255 | protect s/image | evaluate s/image |",
        "|---|---|---|---|---|---|",
    ]
    for label, res in zip(labels, results, strict=True):
        a = res["aggregate"]["image"]
        lines.append(
            f"| {label} | {_pm(a['psnr'], 2)} | {_pm(a['ssim'])} | "
            f"{_pm(a['linf_255'], 1)} | {_pm(a['protect_seconds'], 1)} | "
            f"{_pm(a['eval_seconds'], 1)} |"
        )
    lines += [
        "",
        "Per image (identity transform, mean over seeds):",
        "",
        "| image | method | clean flow px/frame | motion ratio | dissim ratio | SSIM to clean | "
        "frame-0 SSIM | PSNR dB | L∞ | protect s |",
        "|" + "---|" * 10,
    ]
    for label, res in zip(labels, results, strict=True):
        for rec in res["images"]:
            rows_id = [r for r in rec["rows"] if r["transform"] == "identity"]
            m = {k: _stat([r[k] for r in rows_id])["mean"] for k in METRICS}
            lines.append(
                f"| {rec['image']} | {label} | {m['clean_flow']:.2f} | {m['motion_ratio']:.3f} | "
                f"{m['dissim_ratio']:.3f} | {m['video_ssim']:.3f} | {m['ssim_first']:.3f} | "
                f"{_num(rec['psnr'], 2)} | {rec['linf_255']:.0f} | {rec['protect_seconds']:.1f} |"
            )
    return lines + _terms_md(labels, results)


def _terms_md(labels: list[str], results: list[dict]) -> list[str]:
    """The per-term diagnostic of the methods that report one (Anti-I2V): mean over images of
    each term's gradient share and sign agreement with the step, and the lowest agreement seen."""
    lines: list[str] = []
    for label, res in zip(labels, results, strict=True):
        recs = [r for r in res["images"] if r.get("terms")]
        if not recs:
            continue
        if not lines:
            lines += [
                "",
                "Per-term diagnostic (the sidecar's `method_report`: share of the step's gradient "
                "and sign agreement with the step, mean over the diagnostic calls, then over "
                "images; min = the lowest per-image agreement):",
                "",
                "| method | term | gradient share | sign agreement | min agreement | images |",
                "|---|---|---|---|---|---|",
            ]
        for term in sorted({k for r in recs for k in r["terms"]}):
            share = [r["terms"][term]["share"] for r in recs if term in r["terms"]]
            agree = [r["terms"][term]["agree"] for r in recs if term in r["terms"]]
            agree = [a for a in agree if a is not None]
            lo = f"{min(agree):.2f}" if agree else "n/a"
            lines.append(
                f"| {label} | {term} | {np.mean(share):.3f} | "
                f"{_num(float(np.mean(agree)) if agree else math.nan, 3)} | {lo} | {len(share)} |"
            )
        skipped = {k: v for r in recs for k, v in r.get("terms_skipped", {}).items()}
        if skipped:
            lines += [""] + [
                f"- {label}: `{k}` did not run ({v})." for k, v in sorted(skipped.items())
            ]
    return lines


def _ablation_md(doc: dict, sec: dict) -> list[str]:
    cols = " | ".join(f"motion after {t}" for t in PURIFICATIONS)
    lines = [
        f"| setting | motion ratio | median motion ratio | dissim ratio | SSIM to clean video | "
        f"{cols} | PSNR dB | protect s/image |",
        "|" + "---|" * (7 + len(PURIFICATIONS)),
    ]
    for label, k in zip(sec["labels"], sec["keys"], strict=True):
        res = doc["results"][k]
        a, im = res["aggregate"]["protected"], res["aggregate"]["image"]
        pur = " | ".join(_pm(a[t]["motion_ratio"]) for t in PURIFICATIONS)
        lines.append(
            f"| {label} | {_pm(a['identity']['motion_ratio'])} | {_median(res, 'identity')} | "
            f"{_pm(a['identity']['dissim_ratio'])} | {_pm(a['identity']['video_ssim'])} | "
            f"{pur} | {_pm(im['psnr'], 2)} | {_pm(im['protect_seconds'], 1)} |"
        )
    return lines


PROTOCOL = (
    "Protocol: each held-out image is protected with `protect()` (method defaults, L∞ budget on "
    "the saved 8-bit PNG, seed 0), saved with `Protected.save`, and the saved PNG is evaluated with "
    "`evaluate()` against the clean image: one clean and one protected video per generation seed, "
    "after each transform's exact `real()` ({t}). Motion ratio = Farneback flow of the protected "
    "video / clean video; dissim ratio = the same for 1 − SSIM of consecutive frames; SSIM to clean "
    "video = frame-wise SSIM between protected and clean videos; frame-0 SSIM = first frame vs the "
    "input; frames-to-input SSIM drop = 1 − (mean SSIM of all frames to the input, protected / "
    "clean). Aggregates are mean ± population std over all (image, seed) pairs (a ratio is the "
    "mean of per-pair ratios); the goals use those means. Inputs are 64×64, the toy model's "
    "native size."
).format(t=", ".join(TRANSFORMS))


def render_markdown(doc: dict[str, Any]) -> str:
    """``docs/efficacy.md`` from the JSON document (every number comes from ``doc``)."""
    models = sorted({s["run"]["model"] for s in doc["sections"].values()})
    lines = [
        "# Efficacy study",
        "",
        "Generated by `benchmarks/efficacy.py` (do not edit by hand); every number below was "
        "measured by the command quoted in its section.",
        "",
        f"Target: {', '.join(models)}. The shipped toy and the tiny test model are not real I2V "
        "models: these numbers say nothing about protection against real models.",
        "",
        PROTOCOL,
        "",
        "What the numbers mean, what moved them and why the freeze goals cannot be met at 8/255 on "
        "this model: `docs/findings.md` (with the latent-space bound of "
        "`benchmarks/latent_bound.py`, `docs/latent-bound.md`).",
        "",
        "## Goals",
        "",
        "| goal | measured (means) | status |",
        "|---|---|---|",
    ]
    lines += [f"| {g['goal']} | {g['measured']} | **{g['status']}** |" for g in doc["goals"]]
    for sec in doc["sections"].values():
        run = sec["run"]
        versions = ", ".join(f"{k} {v}" for k, v in run["versions"].items())
        per_image = len(run["images"]) * len(run["seeds"])
        lines += [
            "",
            f"## {sec['title']}",
            "",
            f"Command: `{run['command']}`  ",
            f"Date: {run['date']}; whole run {run['seconds']:.0f} s on {run['threads']} CPU "
            f"thread(s){'' if run.get('finished', True) else ' so far (the run was still going)'}.  ",
            f"Model {run['model']}, {run['eval_inference_steps']} sampling steps per video; "
            f"PGD steps {run['steps']}; seeds {run['seeds']}; images {', '.join(run['images'])} "
            f"({per_image} image-seed pairs per transform).  ",
            f"Versions: {versions}.",
            "",
        ]
        lines += [f"- **{k} failed**: {e}" for k, e in sec.get("errors", {}).items()]
        if sec.get("superseded"):
            now = ", ".join(f'{m} (now: section "{n}")' for m, n in sec["superseded"].items())
            lines += [
                f"Superseded rows: {now} were measured with the code of their time (since "
                "changed); the goals use the newer sections.",
                "",
            ]
        if sec.get("note"):
            lines.append(sec["note"])
        elif sec["kind"] == "headline":
            lines += _headline_md(doc, sec)
        else:
            lines += _ablation_md(doc, sec)
    images = {i for s in doc["sections"].values() for i in s["run"]["image_sources"]}
    lines += ["", "## Images", ""] + [f"- {i}" for i in sorted(images)]
    return "\n".join(lines) + "\n"


def _versions() -> dict[str, str]:
    import cv2

    from stillguard.versions import CORE, package_versions

    out = {"python": platform.python_version(), "opencv": cv2.__version__}
    return {**out, **package_versions((*CORE, "scikit-image", "numpy"))}


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, float):
        return float(f"{x:.6g}") if math.isfinite(x) else None
    return x


def to_json(doc: dict[str, Any]) -> str:
    """Indented JSON with every dict or list of plain values kept on one line (a compact file)."""
    text = json.dumps(_jsonable(doc), indent=1, allow_nan=False, ensure_ascii=False)
    flat = re.compile(r"([\[{])\n\s*([^\[\]{}]*?)\n\s*([\]}])")
    return flat.sub(lambda m: m[1] + re.sub(r"\n\s*", " ", m[2]) + m[3], text) + "\n"


def _restore(x: Any) -> Any:
    """JSON ``null`` statistics back to nan, so merged documents render and compare alike."""
    if isinstance(x, dict):
        return {
            k: (math.nan if v is None and k in ("mean", "std") else _restore(v))
            for k, v in x.items()
        }
    if isinstance(x, list):
        return [_restore(v) for v in x]
    return x


# -------------------------------------------------------------------------------------- main
def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", default="toy", help="'toy', 'tiny' or a local pipeline folder")
    ap.add_argument("--adapter", default="cogvideox-i2v")
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--work", type=Path, default=Path("runs/efficacy"), help="protected PNGs")
    ap.add_argument("--quick", action="store_true", help="2 images, 1 seed, 10 steps")
    ap.add_argument("--only", default=None, help="comma-separated headline methods")
    ap.add_argument(
        "--section",
        default="headline",
        help="name of the methods-at-default-settings section (another name adds a table beside it)",
    )
    ap.add_argument("--ablation", action="append", default=[], choices=ABLATIONS)
    ap.add_argument(
        "--ablation-method",
        default="vid-freeze",
        choices=FREEZERS,
        help="method the ablations vary",
    )
    ap.add_argument(
        "--merge-from",
        type=Path,
        action="append",
        default=[],
        help="also keep the sections of this efficacy.json (a run written elsewhere, e.g. in parallel)",
    )
    ap.add_argument("--no-headline", action="store_true")
    ap.add_argument(
        "--supersede",
        default=None,
        help="comma-separated methods whose rows in the other (merged) sections were measured "
        "with older code: they are marked, and the goals use --section's rows",
    )
    ap.add_argument("--merge", action="store_true", help="keep other sections of --out's JSON")
    ap.add_argument("--transfer-model", type=Path, default=None)
    ap.add_argument("--steps", type=int, default=None, help="PGD steps (default 100; quick 10)")
    ap.add_argument("--images", type=int, default=None, help="first N held-out images (max 8)")
    ap.add_argument("--seeds", default=None, help="generation seeds, e.g. 0,1,2")
    ap.add_argument("--threads", type=int, default=1)
    return ap.parse_args(argv)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the study and write ``efficacy.md`` and ``efficacy.json`` into ``--out``; return the doc."""
    from stillguard.adapters import load_adapter
    from stillguard.errors import StillguardError

    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("stillguard").setLevel(logging.WARNING)  # per-video verdict logs
    for h in logging.getLogger().handlers:  # the toy-model caveat is stated once, in the report
        h.addFilter(lambda r: not r.getMessage().startswith("protected against the tiny/toy"))
    torch.set_num_threads(args.threads)
    t_start = time.perf_counter()
    steps = args.steps or (10 if args.quick else 100)
    seeds = (
        [int(s) for s in args.seeds.split(",")] if args.seeds else [0] if args.quick else [0, 1, 2]
    )
    images = held_out_images(args.images or (2 if args.quick else None))
    methods = [m.strip() for m in args.only.split(",")] if args.only else list(HEADLINE)
    adapter = load_adapter(args.adapter, model=args.model)
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    runner = Runner(adapter, images, seeds, args.work)
    run = {
        "command": "python benchmarks/efficacy.py " + shlex.join(argv),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "model": f"{args.adapter} ({args.model})",
        "seeds": seeds,
        "steps": steps,
        "images": [i[0] for i in images],
        "image_sources": [f"{n}: {d}" for n, d, _ in images],
        "threads": args.threads,
        "eval_inference_steps": getattr(adapter, "num_inference_steps", None),
        "versions": _versions(),
    }
    path = args.out / "efficacy.json"
    base: dict[str, Any] = {"sections": {}, "results": {}}
    sources = ([path] if args.merge and path.exists() else []) + list(args.merge_from)
    for other in sources:  # a "not run" note never replaces a section another run measured
        extra = _restore(json.loads(other.read_text()))
        for k, sec in extra["sections"].items():
            if sec.get("kind") != "note" or k not in base["sections"]:
                base["sections"][k] = sec
        base["results"].update(extra["results"])
    sections: dict[str, dict[str, Any]] = {}
    for name in base["sections"] if args.supersede else ():
        sec = base["sections"][name]
        methods = {base["results"][k]["variant"]["method"] for k in sec["keys"]}
        old = methods & {m.strip() for m in args.supersede.split(",")}
        if old and name != args.section:
            marks = dict(sec.get("superseded", {}))
            marks.update(dict.fromkeys(old, args.section))
            sec["superseded"] = dict(sorted(marks.items()))

    def write(finished: bool) -> dict[str, Any]:
        """Write both files now (after every section, so an interrupted run keeps its results)."""
        run["seconds"] = round(time.perf_counter() - t_start, 1)
        run["finished"] = finished
        doc = {"sections": dict(base["sections"]), "results": dict(base["results"])}
        doc["sections"].update({k: {**v, "run": run} for k, v in sections.items()})
        if "transfer" not in doc["sections"]:
            note = "not run: no second model (pass --transfer-model DIR)."
            doc["sections"]["transfer"] = {
                "title": "Transfer",
                "kind": "note",
                "note": note,
                "keys": [],
                "labels": [],
                "run": run,
            }
        doc["results"].update(runner.results)
        used = {k for sec in doc["sections"].values() for k in sec["keys"]}
        doc["results"] = {k: v for k, v in doc["results"].items() if k in used}
        doc["goals"] = goals(doc)
        path.write_text(to_json(doc))
        (args.out / "efficacy.md").write_text(render_markdown(doc))
        return doc

    def section(name: str, title: str, kind: str, vs: list, **kw: Any) -> None:
        keys, labels, errors = [], [], {}
        for v in vs:
            try:
                keys.append(runner.run(v, **kw)["key"])
                labels.append(v["label"])
            except StillguardError as e:  # one failing method must not cost the whole study
                log.error("%s failed: %s", v["label"], e)
                errors[v["label"]] = str(e)
        sections[name] = {"title": title, "kind": kind, "keys": keys, "labels": labels}
        sections[name]["errors"] = errors
        write(False)

    if not args.no_headline:
        vs = [variant(m, m, steps=steps) for m in methods]
        title = "Headline" if args.section == "headline" else f"More methods ({args.section})"
        section(args.section, f"{title}: methods at 8/255, default settings", "headline", vs)
    for name in args.ablation:
        am = args.ablation_method
        vs = ablation_variants(name, steps, adapter.layer_names("attention"), am)
        sec = f"ablation-{name}" + ("" if am == "vid-freeze" else f"-{am}")
        title = (
            "Baselines at default settings" if name == "baselines" else f"Ablation ({am}): {name}"
        )
        section(sec, title, "ablation", vs)
    if args.transfer_model is not None:
        other = load_adapter(args.adapter, model=str(args.transfer_model))
        vs = [variant(m, m, steps=steps) for m in methods]
        title = (
            f"Transfer: protected on {args.model}, evaluated on {args.transfer_model.as_posix()}"
        )
        section("transfer", title, "headline", vs, eval_adapter=other, tag="@transfer")
    doc = write(True)
    for g in doc["goals"]:
        log.info("%-8s %s (%s)", g["status"], g["goal"], g["measured"])
    log.info("wrote %s and efficacy.md in %.0f s", path, run["seconds"])
    return doc


if __name__ == "__main__":
    main()
