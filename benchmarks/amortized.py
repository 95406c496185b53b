"""Amortized protection against PGD, side by side in one run: seconds per photo and effect.

Usage::

    python benchmarks/amortized.py photos runs/protector-photos   # the protectors' natural photos
    OMP_NUM_THREADS=1 python benchmarks/amortized.py run --out docs/ --threads 1 [--seeds 0,1]
        [--images 8] [--pgd-steps 100] [--work runs/amortized-bench] [--protector FILE]
        [--pair-protector FILE] [--no-pair] [--pair-pgd] [--model toy --wan-model toy-wan]

``run`` protects the held-out photos of ``docs/efficacy.md`` (``benchmarks/efficacy.py``
``held_out_images``: scikit-image's chelsea, coffee, rocket, camera and four synthetic scenes of
the toy data's held-out stream, seed 7919) against the CogVideoX toy with: the shipped protector
(``amortized``), the protector plus 10 refinement steps, rollout-freeze's PGD at its defaults (100
steps, the full 10-step sampler) and same-budget noise; and against the toy pair (ensemble) with
the pair protector (plus refinement, and the ensemble PGD with ``--pair-pgd``). Every protected
PNG is evaluated with :func:`stillguard.evaluate` on both toys (the other family is the transfer),
identity and after JPEG 75, 2 generation seeds. Same process, same threads, one photo at a time.

Why held out: the protectors trained on synthetic scenes of stream 4 (seed 0) and on crops of the
photos ``photos`` writes, which are scikit-image's sample photos minus these four (and minus
``cat``, which is ``chelsea``); the synthetic held-out scenes come from stream 3 with another
seed. Nothing of the held-out set was seen in training.

Diagnostics (written beside the tables): the method's loss (rollout-freeze's, fixed draws; the
full sampler in the seconds table, the protectors' training loss ``unroll=2`` on both toys in the
diagnostics table, from the saved PNGs, cached in ``WORK/diagnostics.jsonl``) on the held-out
photos for each variant, next to the protectors' own validation loss ratios, and per photo how
the training loss and the motion ratio go together: reaching PGD's loss but not its motion points
at the loss; a larger ratio on held-out photos than on the validation set points at the data;
not reaching PGD's loss anywhere points at capacity.

Records are appended to ``WORK/records.jsonl`` as they are measured, so a killed run resumes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
import amortized_report as report  # noqa: E402
from efficacy import _rows, held_out_images  # noqa: E402

log = logging.getLogger("amortized")
TRAINING_PHOTOS = ("astronaut", "brick", "coins", "colorwheel", "grass", "gravel", "horse",
                   "hubble_deep_field", "immunohistochemistry", "moon", "page", "retina", "text",
                   "clock", "cell", "logo")  # fmt: skip
TRANSFORMS = ("identity", "jpeg:75")


def write_photos(folder: Path) -> list[str]:
    """Write the protectors' natural training photos (PNG, full size, RGB) into ``folder``."""
    from PIL import Image
    from skimage import data

    folder.mkdir(parents=True, exist_ok=True)
    items = [(n, getattr(data, n)()) for n in TRAINING_PHOTOS]
    items.append(("motorcycle_left", data.stereo_motorcycle()[0]))
    for name, a in items:
        a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
        Image.fromarray(a.astype(np.uint8)).save(folder / f"{name}.png")
    return [n for n, _ in items]


def variants(args: argparse.Namespace) -> list[dict[str, Any]]:
    """The rows: label, targets ("cog" or "pair"), method, options, steps."""
    prot = {"protector": args.protector} if args.protector else {}
    pair = {"protector": args.pair_protector} if args.pair_protector else {}
    out = [
        {"label": "amortized", "on": "cog", "method": "amortized", "options": prot},
        {"label": "amortized + refine 10", "on": "cog", "method": "amortized",
         "options": {**prot, "refine": 10}},
        {"label": f"rollout-freeze PGD ({args.pgd_steps} steps)", "on": "cog",
         "method": "rollout-freeze", "options": {}, "steps": args.pgd_steps},
        {"label": "same-budget noise", "on": None, "method": "noise", "options": {}},
    ]  # fmt: skip
    if not args.no_pair:
        out += [
            {"label": "amortized (pair)", "on": "pair", "method": "amortized", "options": pair},
            {"label": "amortized (pair) + refine 10", "on": "pair", "method": "amortized",
             "options": {**pair, "refine": 10}},
        ]  # fmt: skip
        if args.pair_pgd:
            out.append({"label": f"rollout-freeze PGD ensemble ({args.pgd_steps} steps)",
                        "on": "pair", "method": "rollout-freeze", "options": {},
                        "steps": args.pgd_steps})  # fmt: skip
    return out


@torch.no_grad()
def method_loss(
    adapter: Any, clean: torch.Tensor, x: torch.Tensor, draws: int = 4, **options: Any
) -> float:
    """rollout-freeze's loss (defaults: the full sampler) at ``x``, mean of ``draws`` fixed draws."""
    import stillguard.methods  # noqa: F401 (registers the methods)
    from stillguard.registry import METHODS

    m = METHODS.build("rollout-freeze", **options)
    state = m.setup(adapter, clean, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(12345)
    return float(np.mean([float(m.loss(adapter, x, g, state)[0]) for _ in range(draws)]))


def measure(args: argparse.Namespace, work: Path) -> list[dict[str, Any]]:
    """Protect and evaluate every (variant, photo); resumes from ``work/records.jsonl``."""
    from stillguard import evaluate, load_adapter, load_image, protect, save_protected

    cog = load_adapter("cogvideox-i2v", model=args.model)
    wan = load_adapter("wan-i2v", model=args.wan_model)
    models = {"cog": cog, "pair": [cog, wan], None: None}
    evals = {"cogvideox-toy": cog, "wan-toy": wan}
    done_path = work / "records.jsonl"
    done = {}
    if done_path.exists():
        for line in done_path.read_text().splitlines():
            r = json.loads(line)
            done[(r["variant"], r["image"])] = r
    records = []
    for v in variants(args):
        warm = held_out_images(1)[0][2]  # first calls load files and kernels: not timed
        protect(warm, models[v["on"]], v["method"], steps=min(1, v.get("steps", 100)),
                method_options={**v["options"], "refine": 0} if v["method"] == "amortized" else v["options"])  # fmt: skip
        for name, _, img in held_out_images(args.images):
            if (v["label"], name) in done:
                records.append(done[(v["label"], name)])
                continue
            png = work / f"{v['label'].replace(' ', '_').replace('+', 'p')}-{name}.png"
            t0 = time.perf_counter()
            p = protect(img, models[v["on"]], v["method"], steps=v.get("steps", 100),
                        method_options=v["options"], seed=0)  # fmt: skip
            wall = time.perf_counter() - t0
            save_protected(p, png)
            saved = load_image(png).tensor
            rec = {"variant": v["label"], "on": v["on"], "image": name, "protect_seconds": wall,
                   "loop_seconds": p.seconds, "linf_255": float((saved - p.original).abs().max() * 255),
                   "loss_clean": method_loss(cog, p.original, p.original),
                   "loss": method_loss(cog, p.original, saved), "evals": {}}  # fmt: skip
            for ename, ad in evals.items():
                rep = evaluate(p.original, png, ad, seeds=args.seeds, transforms=TRANSFORMS,
                               noise_baseline=False)  # fmt: skip
                rec["evals"][ename] = _rows(rep, "protected")
            log.info("%s / %s: %.2fs, motion ratio %s", v["label"], name, wall,
                     {e: round(float(np.mean([r["motion_ratio"] for r in rows if r["transform"] == "identity"])), 3)
                      for e, rows in rec["evals"].items()})  # fmt: skip
            with done_path.open("a") as f:
                f.write(json.dumps(rec) + "\n")
            records.append(rec)
    return records


def diagnose(args: argparse.Namespace, work: Path, records: list[dict[str, Any]]) -> list[dict]:
    """Per record, the TRAINING loss (rollout-freeze, ``unroll=2``, as the protectors were trained)
    protected / clean on each toy, from the saved PNGs; cached in ``work/diagnostics.jsonl``.

    Read against the protector's own validation ratio (same loss, its validation photos): a
    larger ratio on held-out photos points at the data; PGD reaching a much lower ratio than the
    network points at capacity or optimisation; variants with the same loss ratio but different
    motion point at the loss.
    """
    from stillguard import load_adapter, load_image

    path, done = work / "diagnostics.jsonl", {}
    if path.exists():
        for line in path.read_text().splitlines():
            r = json.loads(line)
            done[(r["variant"], r["image"])] = r
    ads = {"cogvideox-toy": load_adapter("cogvideox-i2v", model=args.model),
           "wan-toy": load_adapter("wan-i2v", model=args.wan_model)}  # fmt: skip
    clean = {n: img for n, _, img in held_out_images(args.images)}
    out = []
    for r in records:
        key = (r["variant"], r["image"])
        if key not in done:
            png = work / f"{r['variant'].replace(' ', '_').replace('+', 'p')}-{r['image']}.png"
            x, c = load_image(png).tensor, clean[r["image"]]
            done[key] = {"variant": key[0], "image": key[1], "train_loss_ratio": {
                m: method_loss(ad, c, x, unroll=2) / method_loss(ad, c, c, unroll=2)
                for m, ad in ads.items()}}  # fmt: skip
            with path.open("a") as f:
                f.write(json.dumps(done[key]) + "\n")
        out.append(done[key])
    return out


def validation_ratios(args: argparse.Namespace) -> dict[str, dict[str, float]]:
    """The protectors' own final validation ratios, from their files' training records."""
    from stillguard.protector import load_protector, shipped_for

    files = {"single": args.protector or shipped_for([("cogvideox-i2v", args.model)])}
    if not args.no_pair:
        files["pair"] = args.pair_protector or shipped_for(
            [("cogvideox-i2v", args.model), ("wan-i2v", args.wan_model)])  # fmt: skip
    out = {}
    for k, f in files.items():
        val = load_protector(f).training.get("validation", {})
        out[k] = {m: v for m, v in val.items() if m.endswith("/ratio")}
    return out


def network_ms(protector: str | None, reps: int = 20) -> dict[str, float]:
    """Median milliseconds of the protector's forward pass alone, on a 64x64 and a 512x512 photo."""
    from stillguard.protector import load_protector, shipped_for

    path = protector or shipped_for([("cogvideox-i2v", "toy")])
    prot = load_protector(path)
    out = {}
    for side in (64, 512):
        x = torch.rand(1, 3, side, side)
        with torch.no_grad():
            prot.perturb(x)
            times = []
            for _ in range(reps):
                t0 = time.perf_counter()
                prot.perturb(x)
                times.append(time.perf_counter() - t0)
        out[f"{side}x{side}"] = float(np.median(times) * 1000)
    return out


def main(argv: list[str] | None = None) -> dict[str, Any]:
    argv = list(sys.argv[1:] if argv is None else argv)
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    ph = sub.add_parser("photos")
    ph.add_argument("folder", type=Path)
    r = sub.add_parser("run")
    r.add_argument("--out", type=Path, default=Path("docs"))
    r.add_argument("--work", type=Path, default=Path("runs/amortized-bench"))
    r.add_argument("--threads", type=int, default=1)
    r.add_argument("--seeds", default="0,1")
    r.add_argument("--images", type=int, default=None)
    r.add_argument("--pgd-steps", type=int, default=100)
    r.add_argument("--protector", default=None, help="default: the shipped CogVideoX-toy one")
    r.add_argument("--pair-protector", default=None, help="default: the shipped pair one")
    r.add_argument("--no-pair", action="store_true")
    r.add_argument("--pair-pgd", action="store_true", help="also the ensemble PGD (slow)")
    r.add_argument("--model", default="toy")
    r.add_argument("--wan-model", default="toy-wan")
    args = ap.parse_args(argv)
    if args.cmd == "photos":
        names = write_photos(args.folder)
        print(f"{len(names)} photos written to {args.folder}: {', '.join(names)}")
        return {}
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("stillguard").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    args.seeds = [int(s) for s in args.seeds.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    args.out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    records = measure(args, args.work)
    doc = {
        "command": "python benchmarks/amortized.py " + shlex.join(argv),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "threads": args.threads,
        "seeds": args.seeds,
        "images": [n for n, _, _ in held_out_images(args.images)],
        "variants": [v["label"] for v in variants(args)],
        "network_ms": network_ms(args.protector),
        "diagnostics": diagnose(args, args.work, records),
        "validation_ratios": validation_ratios(args),
        "seconds": round(time.perf_counter() - t0, 1),
        "records": records,
    }
    doc["summary"] = report.summarise(doc)
    (args.out / "amortized.json").write_text(json.dumps(doc, indent=1, default=float) + "\n")
    md = report.markdown(doc, keep_from=args.out / "amortized.md")
    (args.out / "amortized.md").write_text(md)
    return doc


if __name__ == "__main__":
    main()
