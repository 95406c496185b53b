"""Transfer matrix: protections computed on one toy (or on an ensemble) evaluated on every toy.

Usage (one command regenerates ``docs/transfer.md`` and ``docs/transfer.json``)::

    OMP_NUM_THREADS=1 python benchmarks/transfer.py --out docs/ [--images 8] [--seeds 0,1]
        [--steps 25] [--methods rollout-freeze,vid-freeze,anti-i2v] [--sources cogvideox-toy,...]
        [--models NAME=ADAPTER:MODEL,...] [--extra-eval NAME=ADAPTER:MODEL] [--tiny]

Rows = computed on (each model alone, then ``ensemble`` = ``protect(x, [all models], method)``
with equal weights, then the same-budget ``noise`` baseline, which uses no model); columns =
evaluated on (every model, plus ``--extra-eval`` models that are only evaluated on). Per cell:
the motion ratio (flow of the protected video / flow of the clean video, same seed; the
definition of ``stillguard.evaluate``) and the dissimilarity ratio (temporal 1-SSIM, likewise),
mean, population std and median over (image, seed), and the protection wall time.

Choices made here:
    * inputs are ``benchmarks/efficacy.py``'s held-out images (natural and synthetic alternating,
      none used in training or tuning), the first ``--images``; PGD ``--steps`` at L-inf 8/255,
      each method's defaults, ``seed=0``; videos with each model's shipped defaults;
    * the ratios are computed directly (no purification: this asks about transfer, not
      robustness), with the clean video of each (model, image, seed) generated once; the
      definitions and the flow (Farneback) are ``stillguard.measure.motion``'s, as ``evaluate``;
    * every protected PNG and every measured number is cached under ``--work`` keyed by the run's
      settings, so an interrupted run resumes and several processes (disjoint ``--sources``) can
      share the work; the last call renders every cached cell;
    * "effect" in the goals is the motion-ratio reduction ``1 - mean motion ratio``; the ensemble
      meets the issue's goal on a member when its effect there is >= 80 % of the member's own
      white-box effect at the same budget and steps; a white-box effect under ``MIN_EFFECT``
      (0.05) is within the cells' spread, so no share is computed (reported as n/a, not met).
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import importlib.util
import json
import logging
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("transfer")
METHODS = ("rollout-freeze", "vid-freeze", "anti-i2v")
MODELS = "cogvideox-toy=cogvideox-i2v:toy,wan-toy=wan-i2v:toy-wan"
TINY_MODELS = "cogvideox-tiny=cogvideox-i2v:tiny,wan-tiny=wan-i2v:tiny"
GOAL = 0.8
SPECIAL = ("ensemble", "noise")
#: a white-box motion-ratio reduction below this is within the spread of the cells (their std is
#: 0.03-0.2 over image x seed) and the share of it an ensemble keeps is not defined
MIN_EFFECT = 0.05


def _efficacy():
    """``benchmarks/efficacy.py`` (for its held-out images), imported by path."""
    path = Path(__file__).with_name("efficacy.py")
    spec = importlib.util.spec_from_file_location("_efficacy", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def parse_models(text: str) -> dict[str, tuple[str, str]]:
    """``"a=adapter:model,b=..."`` -> ``{"a": ("adapter", "model"), ...}``."""
    out = {}
    for item in filter(None, (t.strip() for t in text.split(","))):
        name, _, spec = item.partition("=")
        adapter, _, model = spec.partition(":")
        if not (name and adapter and model):
            raise SystemExit(f"bad model spec {item!r}: use NAME=ADAPTER:MODEL")
        out[name] = (adapter, model)
    return out


def _stat(vals: list[float]) -> dict[str, float | int]:
    a = np.array([v for v in vals if v is not None and math.isfinite(v)], dtype=np.float64)
    if not a.size:
        return {"mean": math.nan, "std": math.nan, "median": math.nan, "n": 0}
    return {"mean": a.mean(), "std": a.std(), "median": float(np.median(a)), "n": int(a.size)}


def _video_numbers(video: torch.Tensor) -> dict[str, float]:
    from stillguard.measure import motion

    return {
        "flow": float(motion.per_frame_flow(video).mean()),
        "dissim": motion.temporal_dissimilarity(video),
    }


def _cached(path: Path, make) -> dict[str, Any]:
    if path.exists():
        return json.loads(path.read_text())
    value = make()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value))
    return value


class Study:
    """Protections (cached PNGs) and their measured videos (cached numbers) under one settings key."""

    def __init__(self, args: argparse.Namespace, models: dict, evals: dict, images: list) -> None:
        self.args, self.models, self.evals, self.images = args, models, evals, images
        self.loaded: dict[str, Any] = {}
        body = {"models": models, "eps": args.eps, "steps": args.steps}
        self.key = hashlib.sha1(json.dumps(body, sort_keys=True).encode()).hexdigest()[:10]
        self.work = args.work / self.key

    def adapter(self, name: str) -> Any:
        from stillguard import load_adapter

        if name not in self.loaded:
            adapter, model = {**self.models, **self.evals}[name]
            self.loaded[name] = load_adapter(adapter, model=model)
        return self.loaded[name]

    def protection(self, source: str, method: str, name: str, img: torch.Tensor) -> dict:
        """Protect one image (or read the cached PNG). Returns ``{"png", "seconds"}`` or
        ``{"error"}`` when a model cannot run the method."""
        from stillguard import protect, save_protected
        from stillguard.errors import StillguardError

        def make() -> dict[str, Any]:
            if source == "noise":
                target: Any = None
            elif source == "ensemble":
                target = [self.adapter(m) for m in self.models]
            else:
                target = self.adapter(source)
            try:
                p = protect(img, target, method, eps=self.args.eps / 255, steps=self.args.steps,
                            seed=0)  # fmt: skip
            except StillguardError as err:
                return {"error": str(err)}
            png = self.work / "png" / source / method / f"{name}.png"
            png.parent.mkdir(parents=True, exist_ok=True)
            save_protected(p, png)
            log.info("protect %s / %s / %s: %.1f s", source, method, name, p.seconds)
            return {"png": str(png), "seconds": p.seconds}

        return _cached(self.work / "prot" / source / method / f"{name}.json", make)

    def video(self, model: str, tag: str, img: torch.Tensor, seed: int) -> dict[str, float]:
        def make() -> dict[str, float]:
            with torch.no_grad():
                v = self.adapter(model).generate(img, seed=seed).float().cpu().clamp(0, 1)
            return _video_numbers(v)

        return _cached(self.work / "video" / model / f"{tag}-s{seed}.json", make)

    def cell(self, source: str, method: str, model: str) -> dict[str, Any]:
        """All (image, seed) ratios of one matrix cell."""
        from stillguard.images import load_image

        rows, seconds, start, end = [], [], [], []
        for name, _, img in self.images:
            prot = self.protection(source, method, name, img)
            if "error" in prot:
                return {"error": prot["error"]}
            seconds.append(prot["seconds"])
            losses = json.loads(Path(prot["png"]).with_suffix(".json").read_text())["losses"]
            if losses:  # mean of the first and of the last 5 steps (one-sample estimates)
                start.append(float(np.mean(losses[:5])))
                end.append(float(np.mean(losses[-5:])))
            x = load_image(prot["png"]).tensor
            orig = torch.round(img * 255) / 255
            for seed in self.args.seeds:
                c = self.video(model, f"clean-{name}", orig, seed)
                m = self.video(model, f"{source}-{method}-{name}", x, seed)
                rows.append({
                    "image": name, "seed": seed,
                    "motion_ratio": m["flow"] / c["flow"] if c["flow"] > 1e-6 else math.nan,
                    "dissim_ratio": m["dissim"] / c["dissim"] if c["dissim"] > 1e-6 else math.nan,
                    "flow": m["flow"], "clean_flow": c["flow"],
                })  # fmt: skip
        return {
            "motion_ratio": _stat([r["motion_ratio"] for r in rows]),
            "dissim_ratio": _stat([r["dissim_ratio"] for r in rows]),
            "protect_seconds": _stat(seconds),
            "loss_start": _stat(start),
            "loss_end": _stat(end),
            "rows": rows,
        }


def goals(matrix: dict, members: list[str]) -> list[dict[str, Any]]:
    """The issue's goals, per method and member: the ensemble's effect vs the white-box effect,
    and the off-diagonal transfer with the noise baseline beside it."""
    out = []
    for method, rows in matrix.items():
        for m in members:
            own = rows.get(m, {}).get(m, {})
            ens = rows.get("ensemble", {}).get(m, {})
            if "motion_ratio" not in own or "motion_ratio" not in ens:
                continue
            e_own = 1 - own["motion_ratio"]["mean"]
            e_ens = 1 - ens["motion_ratio"]["mean"]
            share = e_ens / e_own if e_own >= MIN_EFFECT else math.nan
            m_own = 1 - own["motion_ratio"]["median"]
            m_ens = 1 - ens["motion_ratio"]["median"]
            m_share = m_ens / m_own if m_own >= MIN_EFFECT else math.nan
            noise = rows.get("noise", {}).get(m, {}).get("motion_ratio", {}).get("mean", math.nan)
            cross = {s: rows[s][m]["motion_ratio"]["mean"] for s in members
                     if s != m and "motion_ratio" in rows.get(s, {}).get(m, {})}  # fmt: skip
            out.append({
                "method": method, "member": m, "white_box_effect": e_own, "ensemble_effect": e_ens,
                "share": share, "met": bool(e_own >= MIN_EFFECT and share >= GOAL),
                "white_box_effect_median": m_own, "ensemble_effect_median": m_ens,
                "share_median": m_share,
                "met_median": bool(m_own >= MIN_EFFECT and m_share >= GOAL),
                "cross_motion_ratio": cross, "noise_motion_ratio": noise,
            })  # fmt: skip
    return out


def _protect_minutes(matrix: dict, n_images: int) -> float:
    """Wall time of every distinct protection in the matrix (the noise row counted once)."""
    rows = {(m, src): row for m, rs in matrix.items() for src, row in rs.items()}
    seen, total = set(), 0.0
    for (m, src), row in rows.items():
        key = "noise" if src == "noise" else (m, src)
        cell = next(iter(row.values()), {})
        if key in seen or "protect_seconds" not in cell:
            continue
        seen.add(key)
        total += cell["protect_seconds"]["mean"] * n_images
    return total / 60


def notes(matrix: dict, args: argparse.Namespace, evals: dict) -> list[str]:
    """What the tables leave unsaid: methods a model could not run, the budget, missing columns."""
    refused = [f"{m} on {src}: {c['error']}" for m, rows in matrix.items()
               for src, row in rows.items() for c in row.values() if "error" in c]  # fmt: skip
    out = ["Notes:", ""]
    gs = goals(matrix, [m for m in next(iter(matrix.values()), {}) if m not in SPECIAL])
    defined = [g for g in gs if g["white_box_effect"] >= MIN_EFFECT]
    out.append(
        f"* Goal 1 (the ensemble keeps >= {GOAL:.0%} of each member's white-box effect): met in "
        f"{sum(g['met'] for g in defined)} of {len(defined)} (method, member) pairs with a "
        f"white-box effect >= {MIN_EFFECT}; {len(gs) - len(defined)} pairs have none to keep "
        f"(from medians: met in {sum(g['met_median'] for g in gs)} of "
        f"{sum(g['white_box_effect_median'] >= MIN_EFFECT for g in gs)})."
    )
    beat = [f"{g['method']} from {src} on {g['member']} ({mr:.3f} vs noise "
            f"{g['noise_motion_ratio']:.3f})" for g in gs
            for src, mr in g["cross_motion_ratio"].items()
            if mr <= g["noise_motion_ratio"] - MIN_EFFECT]  # fmt: skip
    out.append(
        "* Goal 2 (cross-family transfer, with the noise baseline beside it): off-diagonal "
        f"cells at least {MIN_EFFECT} below the noise baseline's motion ratio: "
        + ("; ".join(beat) if beat else "none")
        + "."
    )
    out.append(
        "* Both toys are tiny and short-trained (see `src/stillguard/toy/MODEL_CARD.md` and "
        "`MODEL_CARD_WAN.md`; the Wan toy's VAE greys and blurs frames): what transfers between "
        "them says nothing about real models."
    )
    out.append("* " + ("Not run: " + "; ".join(refused) if refused else
                       "Every method ran on every model and on the ensemble."))  # fmt: skip
    out.append(
        f"* {args.steps} PGD steps per protection (the efficacy study used 100): chosen so that "
        "the whole matrix finishes on two shared CPU cores in about an hour; the ensemble gets "
        "the same steps and budget as each single model (the issue's 'same budget')."
    )
    out.append("* The `noise` row needs no model: one same-budget uniform-noise image per input "
               "(seed 0), shared by every method's table.")  # fmt: skip
    if not evals:
        out.append(
            "* The second-seed CogVideoX toy of the efficacy study is not shipped and was not on "
            "this machine, so it has no column; add one with "
            "`--extra-eval cogvideox-seed1=cogvideox-i2v:PATH`."
        )
    return out


def _fmt(s: dict) -> str:
    if not s or s.get("n", 0) == 0:
        return "—"
    return f"{s['mean']:.3f} ± {s['std']:.3f} ({s['median']:.3f})"


def _share(g: dict, suffix: str = "") -> str:
    if not g["white_box_effect" + suffix] >= MIN_EFFECT:
        return f"n/a: white-box effect < {MIN_EFFECT}"
    return f"{g['share' + suffix]:.0%} " + ("met" if g["met" + suffix] else "**not met**")


def render(doc: dict) -> str:
    r = doc["run"]
    cols = r["evaluated_on"]
    lines = [
        "# Transfer matrix: protections computed on one toy, evaluated on every toy",
        "",
        f"Command: `{r['command']}`  ",
        f"Date: {r['date']}; {r['threads']} thread(s) per process; this call {r['minutes']:.1f} "
        "min (cells computed by earlier calls are read back from the cache); protection "
        f"time summed over the matrix {r['protect_minutes']:.0f} min.  ",
        f"Settings: L-inf {r['eps_255']}/255, {r['steps']} PGD steps, each method's defaults, "
        f"protect seed 0; images {', '.join(r['images'])}; generation seeds {r['seeds']}; "
        "videos with each model's shipped defaults. Models: "
        + "; ".join(f"`{k}` = {a} ({m})" for k, (a, m) in r["models"].items())
        + ". `ensemble` = `protect(x, ["
        + ", ".join(r["members"])
        + "], method)`, equal weights.",
        "",
        "Each cell: motion ratio (protected / clean flow, same seed; 1 = no effect, 0 = frozen) "
        "as mean ± std (median) over image × seed; then the dissimilarity (1 − SSIM) ratio; "
        "then the mean protection time per image and the method's loss (the ensemble's: the "
        "members' losses each divided by its clean value, averaged), mean of the first and of "
        "the last five PGD steps, averaged over images. Rows = computed on, columns = evaluated on. "
        "These are toy models: the numbers say nothing about real I2V models.",
        "",
    ]
    for method, rows in doc["matrix"].items():
        lines += [f"## {method}", "", "| computed on | " + " | ".join(cols)
                  + " | protect s | loss, first → last 5 steps |",
                  "|---" * (len(cols) + 3) + "|"]  # fmt: skip
        for src, row in rows.items():
            err = next((c["error"] for c in row.values() if "error" in c), None)
            if err:
                lines.append(f"| {src} | not run: {err} |" + " |" * len(cols))
                continue
            cells = [f"motion {_fmt(row[c]['motion_ratio'])}<br>dissim "
                     f"{_fmt(row[c]['dissim_ratio'])}" if c in row else "not run" for c in cols]  # fmt: skip
            first = next(iter(row.values()), {})
            secs = first.get("protect_seconds", {}).get("mean", 0)
            a, b = first.get("loss_start", {}), first.get("loss_end", {})
            loss = f"{a['mean']:.4g} → {b['mean']:.4g}" if a.get("n") else "—"
            lines.append(f"| {src} | " + " | ".join(cells) + f" | {secs:.1f} | {loss} |")
        lines.append("")
    lines += ["## Goals", "", "Effect = 1 − motion ratio, from the mean (the goal) and, in "
              "brackets, from the median (ratios over a small clean flow make the mean swing).", "",
              "| method | member | white-box effect | ensemble effect | share (goal ≥ 80 %) | "
              "share from medians | cross-family motion ratio | noise motion ratio |",
              "|---" * 8 + "|"]  # fmt: skip
    for g in doc["goals"]:
        cross = ", ".join(f"from {k}: {v:.3f}" for k, v in g["cross_motion_ratio"].items())
        lines.append(
            f"| {g['method']} | {g['member']} | {g['white_box_effect']:.3f} "
            f"({g['white_box_effect_median']:.3f}) | {g['ensemble_effect']:.3f} "
            f"({g['ensemble_effect_median']:.3f}) | {_share(g)} | {_share(g, '_median')}"
            f" | {cross} | {g['noise_motion_ratio']:.3f} |"
        )
    lines += ["", *doc.get("notes", [])]
    return "\n".join(lines) + "\n"


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default=None, help=f"protect and evaluate on (default {MODELS})")
    ap.add_argument("--extra-eval", default="", help="evaluated on only: NAME=ADAPTER:MODEL,...")
    ap.add_argument("--tiny", action="store_true", help="random tiny models (harness test)")
    ap.add_argument("--methods", default=",".join(METHODS))
    ap.add_argument("--sources", default=None, help="rows to compute now (default: all)")
    ap.add_argument("--columns", default=None, help="columns to compute now (default: all)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=25)
    ap.add_argument("--eps", type=float, default=8.0, help="L-inf budget in 8-bit steps")
    ap.add_argument("--work", type=Path, default=Path("runs/transfer"))
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--no-render", action="store_true", help="only fill the cache")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    return args


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("stillguard").setLevel(logging.ERROR)  # the toy caveat is stated once
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    models = parse_models(args.models or (TINY_MODELS if args.tiny else MODELS))
    evals = parse_models(args.extra_eval)
    images = _efficacy().held_out_images(args.images)
    study = Study(args, models, evals, images)
    methods = [m.strip() for m in args.methods.split(",") if m.strip()]
    every = [*models, "ensemble", "noise"]
    todo = [s.strip() for s in args.sources.split(",")] if args.sources else every
    cols = [*models, *evals]
    now = [c.strip() for c in args.columns.split(",")] if args.columns else cols
    matrix: dict[str, dict[str, dict]] = {}
    for method in methods:
        matrix[method] = {}
        for src in every:
            if src == "noise" and method != methods[0]:
                continue  # one noise row (it does not depend on the method)
            label = src
            if src not in todo:
                continue
            matrix[method][label] = {}
            for col in (c for c in cols if c in now):
                cell = study.cell(src, "noise" if src == "noise" else method, col)
                matrix[method][label][col] = cell
                if "error" in cell:
                    break
    if "noise" in matrix.get(methods[0], {}):
        for method in methods[1:]:
            matrix[method]["noise"] = matrix[methods[0]]["noise"]
    doc = {
        "run": {
            "command": "python benchmarks/transfer.py " + shlex.join(argv),
            "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "threads": args.threads, "minutes": (time.perf_counter() - t0) / 60,
            "eps_255": args.eps, "steps": args.steps, "seeds": args.seeds,
            "images": [i[0] for i in images], "models": {**models, **evals},
            "members": list(models), "evaluated_on": cols, "settings_key": study.key,
            "protect_minutes": _protect_minutes(matrix, len(images)),
        },
        "matrix": matrix,
        "goals": goals(matrix, list(models)),
        "notes": notes(matrix, args, evals),
    }  # fmt: skip
    if not args.no_render:
        args.out.mkdir(parents=True, exist_ok=True)
        text = json.dumps(doc, indent=1, default=float).replace("NaN", "null")
        (args.out / "transfer.json").write_text(text + "\n")
        (args.out / "transfer.md").write_text(render(doc))
    return doc


if __name__ == "__main__":
    main()
