"""How far can ANY image perturbation of a given budget move the toy model? A latent-space bound.

Usage (regenerates ``docs/latent-bound.md`` and ``docs/latent-bound.json``)::

    OMP_NUM_THREADS=2 python benchmarks/latent_bound.py --model toy --out docs/
        [--eps 4,8,16] [--objective freeze] [--images N] [--steps 80] [--seeds 100,101,102]

A CogVideoX-family model sees the photo only through its VAE latent ``E(x)``. So the effect of an
image perturbation is limited by two things, measured here per held-out image and budget:

1. **Reach**: the largest latent change the budget allows, ``r = max ||E(x+d) - E(x)||_2 / ||E(x)||_2``
   over ``||d||_inf <= eps`` (60 sign-gradient ascent steps from a random start; a lower estimate of
   the true maximum).
2. **Oracle**: the best result of an attacker who may set the latent itself, anywhere in the L2 ball
   of radius ``r * ||E(x)||`` around ``E(x)`` (Adam, ``--steps`` steps, projected, one fresh noise per
   step, through the full differentiable sampler). Every latent an image attack can reach lies in
   that ball, so, up to the optimiser finding the optimum, no pixel attack of this budget can do
   better than the oracle. ``eps=inf`` drops the ball: can the latent freeze the model at all?

Objectives: ``freeze`` minimises the frame-to-frame change of the generated latent video (the
``rollout-freeze`` loss); ``collapse`` maximises the distance of every generated frame to the
photo's latent (the Anti-I2V intent). Evaluation decodes ``adapter.rollout`` videos for seeds
``--seeds`` (the pipeline's DDIM sampler on the posterior mode of the latent; the pipeline itself
samples the posterior, so absolute flows differ slightly from ``docs/efficacy.md``; ratios compare
the same sampler) and reports, per image, mean-over-seeds ratios to the clean latent's videos.
"""

from __future__ import annotations

import argparse
import datetime as dt
import logging
import math
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("latent_bound")
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sibling efficacy.py: held-out images, stats, JSON helpers
    sys.path.insert(0, str(HERE))


def reach(adapter: Any, image: torch.Tensor, eps: float, steps: int = 60) -> float:
    """Largest relative L2 change of the image latent found within ``||d||_inf <= eps``."""
    if math.isinf(eps):
        return math.inf
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        z0 = adapter.encode(image).first_latent
    d = ((torch.rand(image.shape, generator=g) * 2 - 1) * eps).requires_grad_(True)
    best = 0.0
    for _ in range(steps):
        z = adapter.encode((image + d).clamp(0, 1)).first_latent
        gap = (z - z0).pow(2).sum()
        best = max(best, float(gap.detach().sqrt() / z0.norm()))
        (-gap).backward()
        with torch.no_grad():
            d -= eps / 10 * d.grad.sign()
            d.clamp_(-eps, eps)
            d.grad = None
    return best


def objective(name: str, z: torch.Tensor, still: torch.Tensor) -> torch.Tensor:
    """The quantity the oracle minimises on a generated latent video ``z (1,F,C,h,w)``."""
    scale = z.detach().pow(2).mean().clamp_min(1e-8)
    if name == "freeze":
        return (z[:, 1:] - z[:, :1]).pow(2).mean() / scale
    return -(z - still).pow(2).mean() / scale


def oracle(
    adapter: Any, z0: torch.Tensor, radius: float, name: str, steps: int, lr: float = 0.05
) -> torch.Tensor:
    """Latent in the L2 ball ``||z - z0|| <= radius * ||z0||`` optimising ``objective(name)``."""
    still = adapter.condition_on_latent(z0).image_latents[:, :1]
    z = z0.clone().requires_grad_(True)
    opt = torch.optim.Adam([z], lr=lr)
    g = torch.Generator().manual_seed(0)
    limit = radius * float(z0.norm())
    for _ in range(steps):
        noise = torch.randn(adapter.latent_shape(1), generator=g)
        video = adapter.rollout(adapter.condition_on_latent(z), noise, adapter.num_inference_steps)
        loss = objective(name, video.float(), still)
        opt.zero_grad()
        loss.backward()
        opt.step()
        with torch.no_grad():
            gap = z - z0
            if gap.norm() > limit:
                z.copy_(z0 + gap * (limit / float(gap.norm())))
    return z.detach()


def measure(adapter: Any, z: torch.Tensor, image: torch.Tensor, seeds: list[int]) -> dict:
    """Flow, temporal dissimilarity and SSIM to the input of rollout videos from latent ``z``."""
    from stillguard.measure import metrics, motion

    out: dict[str, list[float]] = {"flow": [], "dissim": [], "ssim_all": []}
    with torch.no_grad():
        cond = adapter.condition_on_latent(z)
        for s in seeds:
            noise = torch.randn(adapter.latent_shape(1), generator=torch.Generator().manual_seed(s))
            video = adapter.decode(adapter.rollout(cond, noise, adapter.num_inference_steps))
            out["flow"].append(motion.flow_magnitude(video))
            out["dissim"].append(motion.temporal_dissimilarity(video))
            out["ssim_all"].append(metrics.image_fidelity(video, image)["ssim_all"])
    return out


def run(args: argparse.Namespace) -> dict[str, Any]:
    import efficacy as eff

    from stillguard.adapters import load_adapter

    adapter = load_adapter("cogvideox-i2v", model=args.model)
    images = eff.held_out_images(args.images)
    seeds = [int(s) for s in args.seeds.split(",")]
    budgets = [math.inf if e.strip() == "inf" else float(e) for e in args.eps.split(",")]
    rows = []
    for name, _, img in images:
        with torch.no_grad():
            z0 = adapter.encode(img).first_latent
        clean = measure(adapter, z0, img, seeds)
        for e in budgets:
            t0 = time.perf_counter()
            r = reach(adapter, img, e / 255)
            z = oracle(adapter, z0, r, args.objective, args.steps)
            got = measure(adapter, z, img, seeds)
            row = {
                "image": name,
                "eps_255": "inf" if math.isinf(e) else e,
                "reach": None if math.isinf(r) else round(r, 4),
                "moved": round(float((z - z0).norm() / z0.norm()), 4),
                "motion_ratio": float(np.mean(np.divide(got["flow"], clean["flow"]))),
                "dissim_ratio": float(np.mean(np.divide(got["dissim"], clean["dissim"]))),
                "ssim_all": float(np.mean(got["ssim_all"])),
                "clean_ssim_all": float(np.mean(clean["ssim_all"])),
                "clean_flow": float(np.mean(clean["flow"])),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            rows.append(row)
            log.info(
                "%s eps %s: reach %s, motion ratio %.3f, ssim_all %.3f (clean %.3f), %.0fs",
                name,
                row["eps_255"],
                row["reach"],
                row["motion_ratio"],
                row["ssim_all"],
                row["clean_ssim_all"],
                row["seconds"],
            )
    summary = []
    for e in budgets:
        sel = [r for r in rows if r["eps_255"] == ("inf" if math.isinf(e) else e)]
        summary.append(
            {
                "eps_255": sel[0]["eps_255"],
                **{
                    k: eff._stat([r[k] for r in sel if r[k] is not None])
                    for k in (
                        "reach",
                        "moved",
                        "motion_ratio",
                        "dissim_ratio",
                        "ssim_all",
                        "clean_ssim_all",
                    )
                },
            }
        )
    return {
        "command": "python benchmarks/latent_bound.py " + shlex.join(sys.argv[1:]),
        "date": dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "versions": eff._versions(),
        "model": adapter.describe(),
        "objective": args.objective,
        "steps": args.steps,
        "seeds": seeds,
        "images": [i[0] for i in images],
        "summary": summary,
        "rows": rows,
    }


def render(doc: dict[str, Any]) -> str:
    def pm(s: dict) -> str:
        if s["mean"] is None or not math.isfinite(s["mean"]):
            return "–"
        return f"{s['mean']:.3f} ± {s['std']:.3f}"

    lines = [
        f"# Latent-space bound on the toy model ({doc['objective']})",
        "",
        f"Measured {doc['date']} with `{doc['command']}` (torch {doc['versions'].get('torch')}, "
        f"diffusers {doc['versions'].get('diffusers')}); {len(doc['images'])} held-out images, "
        f"rollout seeds {doc['seeds']}, {doc['steps']} oracle steps. Method and caveats: the "
        "docstring of `benchmarks/latent_bound.py`.",
        "",
        "| budget (/255) | reach: latent change ‖ΔE‖/‖E‖ | oracle moved | motion ratio | "
        "temporal-dissim ratio | SSIM frames→input (clean) |",
        "|---|---|---|---|---|---|",
    ]
    for s in doc["summary"]:
        lines.append(
            f"| {s['eps_255']} | {pm(s['reach'])} | {pm(s['moved'])} | {pm(s['motion_ratio'])} | "
            f"{pm(s['dissim_ratio'])} | {pm(s['ssim_all'])} ({s['clean_ssim_all']['mean']:.3f}) |"
        )
    lines += [
        "",
        "Per image:",
        "",
        "| image | budget | reach | motion ratio | SSIM frames→input |",
        "|---|---|---|---|---|",
    ]
    for r in doc["rows"]:
        lines.append(
            f"| {r['image']} | {r['eps_255']} | {r['reach']} | {r['motion_ratio']:.3f} | "
            f"{r['ssim_all']:.3f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> dict[str, Any]:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="toy", help="toy, tiny, or a local CogVideoX-I2V folder")
    p.add_argument("--out", default=None, help="folder for latent-bound[-collapse].md/.json")
    p.add_argument("--eps", default="4,8,16,inf", help="budgets in /255, 'inf' for no ball")
    p.add_argument("--objective", choices=("freeze", "collapse"), default="freeze")
    p.add_argument("--images", type=int, default=None, help="first N held-out images (default all)")
    p.add_argument("--steps", type=int, default=80, help="oracle Adam steps")
    p.add_argument("--seeds", default="100,101,102", help="rollout seeds of the evaluation")
    p.add_argument("--threads", type=int, default=None)
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    if args.threads:
        torch.set_num_threads(args.threads)
    doc = run(args)
    text = render(doc)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        stem = "latent-bound" if args.objective == "freeze" else "latent-bound-collapse"
        import efficacy

        (out / f"{stem}.json").write_text(efficacy.to_json(doc))
        (out / f"{stem}.md").write_text(text)
    return doc


if __name__ == "__main__":
    main()
