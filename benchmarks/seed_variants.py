"""Variants of a seed method on the toy's held-out photos: spaces, budgets, masks, terms removed.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/seed_variants.py --study dsp [--images 8] [--seeds 0,1]
        [--steps 100] [--out docs/] [--work runs/seed-variants]
    OMP_NUM_THREADS=1 python benchmarks/seed_variants.py --study terms ...

Protocol (the smallest design that answers the question; ``benchmarks/efficacy.py``'s images and
protocol, identity transform only): each variant protects each held-out image (seed 0, saved
8-bit PNG, L-infinity on the saved file), and ``evaluate()`` compares clean and protected videos for
every generation seed. Per variant: frames-to-input SSIM drop (``1 - protected/clean`` mean SSIM
of every frame to the input), SSIM to the clean video, motion ratio, PSNR and L-infinity of the
PNG; mean +- population std over (image, seed) pairs (PSNR over images); the Anti-I2V term
diagnostic (gradient share, sign agreement) is averaged from the sidecar's ``method_report``.

Studies:
    * ``dsp``: Anti-I2V's Dual-Space Perturbation against plain RGB PGD with the same loss, at the
      same L-infinity (8/255) and at the same PSNR (RGB with a smaller box; the dual space with
      larger part budgets), and the dual space with a saliency or face mask;
    * ``terms``: Anti-I2V with each term removed in turn (the paper's ablation direction: each
      term removed should cost something);
    * ``vf-budget``: Vid-Freeze at 8/255 and 32/255 and same-budget noise at 32/255: whether more
      uniform attention slows the video once the budget lets the image move it. For these rows
      the table adds Vid-Freeze's ``excess`` (its loss minus the uniform-attention floor) on the
      protected PNG as a ratio to the clean photo's, mean over 8 fixed (timestep, noise) draws.
"""

from __future__ import annotations

import argparse
import json
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("seed_variants")
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))

A = "anti-i2v"


def studies() -> dict[str, list[dict[str, Any]]]:
    """Each study's variants: label, method, eps (x255), space and its options, method options."""

    def v(label: str, eps: float = 8, space: str | None = None, sopts: dict | None = None,
          mopts: dict | None = None) -> dict[str, Any]:  # fmt: skip
        return {"label": label, "method": A, "eps_255": eps, "space": space,
                "space_options": sopts or {}, "method_options": mopts or {}}  # fmt: skip

    return {
        "dsp": [
            v("dual 8/255 (default)"),
            v("rgb 8/255 (equal L-inf)", space="rgb"),
            v("rgb 6/255 (about equal PSNR)", 6, space="rgb"),
            v("rgb 5/255", 5, space="rgb"),
            v(
                "dual 8/255, part budgets x2",
                space="dual",
                sopts={"eps_ab": 8.0, "eps_coef": 0.502},
            ),
            v("dual 8/255 + saliency mask", space="dual", sopts={"mask": "saliency"}),
            v("dual 8/255 + face mask", space="dual", sopts={"mask": "face"}),
        ],
        "terms": [
            v("all terms (default)"),
            v("without irc", mopts={"irc_weight": 0}),
            v("without ira (denoiser and VAE)", mopts={"ira_weight": 0}),
            v("without -L_DM", mopts={"diff_weight": 0}),
            v("equal weights, no balancing", mopts={"balance": "none"}),
        ],
        "vf-budget": [
            {**v("vid-freeze 8/255"), "method": "vid-freeze"},
            {**v("vid-freeze 32/255", 32), "method": "vid-freeze"},
            {**v("same-budget noise 32/255", 32), "method": "noise"},
        ],
    }


def excess_ratio(adapter: Any, clean: torch.Tensor, x: torch.Tensor, draws: int = 8) -> float:
    """Vid-Freeze's ``excess`` at ``x`` over the clean photo's, mean over fixed draws (seed 123)."""
    from stillguard.plugins import METHODS

    vf = METHODS.build("vid-freeze")
    state = vf.setup(adapter, clean, torch.Generator().manual_seed(0))
    out = []
    for img in (clean, x):
        g = torch.Generator().manual_seed(123)
        with torch.no_grad():
            out.append(
                np.mean([vf.loss(adapter, img, g, state)[1]["excess"] for _ in range(draws)])
            )
    return float(out[1] / out[0])


def run_variant(adapter: Any, var: dict, images: list, seeds: list[int], work: Path) -> dict:
    from stillguard import evaluate, protect, save_protected

    recs = []
    for name, _, img in images:
        t0 = time.perf_counter()
        p = protect(img, None if var["method"] == "noise" else adapter, var["method"],
                    eps=var["eps_255"] / 255, steps=var["steps"], space=var["space"],
                    space_options=var["space_options"] or None,
                    method_options=var["method_options"] or None, seed=0)  # fmt: skip
        png = work / f"{var['key']}-{name}.png"
        save_protected(p, png)
        t_prot = time.perf_counter() - t0
        rep = evaluate(p.original, png, adapter, seeds=seeds, transforms=("identity",),
                       noise_baseline=False)  # fmt: skip
        rows = [r for r in rep.rows if r["subject"] == "protected"]
        imp = rep.imperceptibility["protected"]
        diag = p.config.get("method_report", {}).get("terms", {})
        excess = excess_ratio(adapter, p.original, p.image) if var["study"] == "vf-budget" else None
        recs.append({
            "excess_ratio": excess,
            "image": name, "protect_s": t_prot, "psnr": imp["psnr"], "linf": imp["linf_255"],
            "drop": [(r["clean_ssim_all"] - r["ssim_all"]) / r["clean_ssim_all"] for r in rows],
            "video_ssim": [r["video_ssim"] for r in rows],
            "motion": [r["motion_ratio"] for r in rows],
            "share": {k: d["share"] for k, d in diag.items()},
            "agree": {k: d["agree"] for k, d in diag.items()},
        })  # fmt: skip
        log.info("%s / %s: drop %.4f psnr %.2f (%.0f s)", var["label"], name,
                 float(np.mean(recs[-1]["drop"])), imp["psnr"], t_prot)  # fmt: skip
    return {"variant": var, "images": recs}


def _stat(vals: list[float]) -> tuple[float, float]:
    a = np.asarray(vals, dtype=np.float64)
    return float(a.mean()), float(a.std())


def render(study: str, results: list[dict], cmd: str, seconds: float, design: str) -> str:
    lines = [
        f"# Seed-method variants: {study}",
        "",
        f"Generated by `{cmd}` ({seconds:.0f} s on a shared, loaded 2-core CPU machine). "
        f"Design: {design}. Protocol in the script's docstring. Toy model only: nothing here "
        "says how a variant does on a real model.",
        "",
        "| variant | frames-to-input SSIM drop | SSIM to clean video | motion ratio | PSNR dB | "
        "L-inf x255 | term share / sign agreement (mean over images) | Vid-Freeze excess ratio |",
        "|---|---|---|---|---|---|---|---|",
    ]
    for res in results:
        recs = res["images"]
        if not recs:
            lines.append(f"| {res['variant']['label']} | not run: {res.get('error', '')} ||||||||")
            continue
        drop = _stat([d for r in recs for d in r["drop"]])
        vs = _stat([d for r in recs for d in r["video_ssim"]])
        mo = _stat([d for r in recs for d in r["motion"]])
        ps = _stat([r["psnr"] for r in recs])
        linf = max(r["linf"] for r in recs)
        terms = sorted({k for r in recs for k in r["share"]})
        diag = ", ".join(
            f"{k} {np.mean([r['share'][k] for r in recs]):.2f}/"
            f"{np.mean([r['agree'][k] for r in recs]):.2f}"
            for k in terms
        )
        exc = [r["excess_ratio"] for r in recs if r.get("excess_ratio") is not None]
        exc_s = "n/a" if not exc else f"{np.mean(exc):.3f} ({min(exc):.3f}-{max(exc):.3f})"
        lines.append(
            f"| {res['variant']['label']} | {drop[0]:.4f} ± {drop[1]:.4f} | {vs[0]:.4f} ± "
            f"{vs[1]:.4f} | {mo[0]:.3f} ± {mo[1]:.3f} | {ps[0]:.2f} ± {ps[1]:.2f} | {linf:.0f} | "
            f"{diag or 'n/a'} | {exc_s} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    from efficacy import held_out_images

    from stillguard.adapters import load_adapter
    from stillguard.errors import StillguardError

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--study", choices=sorted(studies()), required=True)
    ap.add_argument("--only", default=None, help="comma-separated variant indices")
    ap.add_argument("--model", default="toy")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--seeds", default="0,1")
    ap.add_argument("--steps", type=int, default=100)
    ap.add_argument("--out", type=Path, default=None)
    ap.add_argument("--work", type=Path, default=Path("runs/seed-variants"))
    ap.add_argument("--threads", type=int, default=1)
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("stillguard").setLevel(logging.ERROR)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    adapter = load_adapter("cogvideox-i2v", model=args.model)
    images = held_out_images(args.images)
    seeds = [int(s) for s in args.seeds.split(",")]
    variants = studies()[args.study]
    if args.only:
        variants = [variants[int(i)] for i in args.only.split(",")]
    args.work.mkdir(parents=True, exist_ok=True)
    results = []
    for i, var in enumerate(variants):
        var = {**var, "steps": args.steps, "key": f"{args.study}-{i}", "study": args.study}
        try:
            results.append(run_variant(adapter, var, images, seeds, args.work))
        except StillguardError as err:  # e.g. the face mask where dlib is unavailable
            log.error("%s failed: %s", var["label"], err)
            results.append({"variant": var, "images": [], "error": str(err)})
        if args.out is not None:
            args.out.mkdir(parents=True, exist_ok=True)
            cmd = "python benchmarks/seed_variants.py " + shlex.join(argv)
            design = (f"{len(images)} held-out images x {len(seeds)} generation seeds "
                      f"({', '.join(n for n, _, _ in images)}; seeds {seeds}), {args.steps} PGD "
                      f"steps, model {args.model}")  # fmt: skip
            md = render(args.study, results, cmd, time.perf_counter() - t0, design)
            (args.out / f"seed-variants-{args.study}.md").write_text(md)
            (args.out / f"seed-variants-{args.study}.json").write_text(
                json.dumps({"command": cmd, "design": design, "results": results}, indent=1)
            )
    return results


if __name__ == "__main__":
    main()
