"""How close are the cheap attention estimates to Vid-Freeze's exact maps? Gradient cosine and memory.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/attention_estimates.py [--models toy,tiny,tiny-1.5]
        [--sizes 9x64,17x64,9x96] [--draws 4] [--queries 16,64,256] [--out docs/]

For each model and size (``FRAMESxSIDE``: the attack's frame count and square working
resolution), the image is a fixed held-out photo (``chelsea``, as in ``benchmarks/efficacy.py``)
and ``--draws`` (timestep, noise) pairs are drawn from a fixed seed. For each draw the gradient
of Vid-Freeze's loss with respect to the image is computed with the exact maps and with every
estimate, all under the same draw; the table gives, per estimate, the mean over draws of:

* ``cosine``: cosine similarity between the estimate's gradient and the exact one;
* ``sign agreement``: the fraction of pixels whose gradient sign matches the exact one (what a
  sign-PGD step sees);
* ``recorded MiB``: bytes of the attention probabilities the capture keeps for one step (the
  memory an estimate saves; the rest of the step is the same).

``sampled`` draws its query rows once per step from the run's generator (what one PGD step
sees; its expectation over rows is the exact gradient up to the row normalisation). Text
tokens follow Vid-Freeze's convention (video rows against video keys, ``methods/_video_maps.py``).
Real-size memory (CogVideoX-5b-I2V) comes from the planner (``stillguard plan``), quoted in
``docs/attention-estimates.md`` with its command.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
import time
from pathlib import Path
from typing import Any

import torch

log = logging.getLogger("attention_estimates")
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:
    sys.path.insert(0, str(HERE))


def load(model: str, frames: int, side: int) -> Any:
    """The adapter ``model`` ("toy", "tiny" or "tiny-1.5") at ``frames`` x ``side`` x ``side``."""
    import tempfile

    from stillguard.adapters import load_adapter
    from stillguard.plugins import ADAPTERS

    opts = dict(opt_num_frames=frames, num_frames=frames, height=side, width=side)
    if model == "toy":
        return load_adapter("cogvideox-i2v", model="toy", **opts)
    variant = "1.5" if model == "tiny-1.5" else "1.0"
    cls = ADAPTERS.get("cogvideox-i2v")
    folder = Path(tempfile.mkdtemp(prefix="stillguard-tiny-"))
    cls.tiny(0, variant=variant).save_pretrained(str(folder))
    return cls.from_pretrained(str(folder), **opts)


def gradient(adapter: Any, x: torch.Tensor, mode: str, queries: int, seed: int) -> tuple:
    """Vid-Freeze's image gradient under draw ``seed``, and the bytes of the probabilities a
    capture in that mode records for the same draw (a second, no-grad forward)."""
    from stillguard.methods.base import draw
    from stillguard.plugins import METHODS

    m = METHODS.build("vid-freeze", attention_mode=mode, max_queries=queries)
    state = m.setup(adapter, x, torch.Generator().manual_seed(0))
    leaf = x.clone().requires_grad_(True)
    loss, _ = m.loss(adapter, leaf, torch.Generator().manual_seed(seed), state)
    (g,) = torch.autograd.grad(loss, leaf)
    gen = torch.Generator().manual_seed(seed)
    t, noise = draw(adapter, gen)
    with (
        torch.no_grad(),
        adapter.capture(
            attention=state.layers, mode=mode, max_queries=queries, generator=gen
        ) as cap,
    ):
        adapter.denoise(x, t, noise)
        nbytes = sum(p.numel() * p.element_size() for n in state.layers for p in cap.attention[n])
    return g.flatten(), nbytes


def measure(adapter: Any, x: torch.Tensor, estimates: list, draws: int) -> dict[str, dict]:
    out: dict[str, dict] = {}
    for d in range(draws):
        exact, exact_bytes = gradient(adapter, x, "exact", 1, 1000 + d)
        out.setdefault("exact", {"cos": [], "sign": [], "bytes": exact_bytes})
        out["exact"]["cos"].append(1.0)
        out["exact"]["sign"].append(1.0)
        for label, mode, q in estimates:
            g, nbytes = gradient(adapter, x, mode, q, 1000 + d)
            cos = float(torch.nn.functional.cosine_similarity(g, exact, dim=0))
            both = (g != 0) & (exact != 0)
            sign = float((g.sign() == exact.sign())[both].float().mean())
            row = out.setdefault(label, {"cos": [], "sign": [], "bytes": nbytes})
            row["cos"].append(cos)
            row["sign"].append(sign)
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    from efficacy import held_out_images

    from stillguard.errors import StillguardError

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--models", default="toy,tiny,tiny-1.5")
    ap.add_argument("--sizes", default="9x64,17x64,33x64,9x96")
    ap.add_argument("--queries", default="16,64,256")
    ap.add_argument("--draws", type=int, default=4)
    ap.add_argument("--out", type=Path, default=None, help="write attention-estimates.md here")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument(
        "--real",
        action="store_true",
        help="also plan CogVideoX-5b-I2V with each estimate (fake tensors, minutes)",
    )
    argv = list(sys.argv[1:] if argv is None else argv)
    args = ap.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    logging.getLogger("stillguard").setLevel(logging.WARNING)
    torch.set_num_threads(args.threads)
    t0 = time.perf_counter()
    img = held_out_images(1)[0][2]
    queries = [int(q) for q in args.queries.split(",")]
    estimates = [(f"sampled {q} rows", "sampled", q) for q in queries] + [("pooled", "pooled", 1)]
    rows: list[dict[str, Any]] = []
    for model in args.models.split(","):
        for size in args.sizes.split(","):
            frames, side = (int(v) for v in size.split("x"))
            try:
                a = load(model, frames, side)
                tokens = a.latent_shape(1)
                res = measure(a, img, estimates, args.draws)
            except (ValueError, RuntimeError, StillguardError) as err:  # e.g. learned pos. emb.
                why = " ".join(str(err).split())[:90]
                rows.append({"model": model, "size": f"{frames} frames, {side}x{side}",
                             "error": f"{type(err).__name__}: {why}"})  # fmt: skip
                log.info("%s %s: not supported (%s)", model, size, why)
                continue
            for label, r in res.items():
                rows.append({
                    "model": model, "size": f"{frames} frames, {side}x{side}",
                    "latent": "x".join(str(v) for v in tokens[1:]), "estimate": label,
                    "cosine": sum(r["cos"]) / len(r["cos"]), "cos_min": min(r["cos"]),
                    "sign": sum(r["sign"]) / len(r["sign"]), "mib": r["bytes"] / 2**20,
                })  # fmt: skip
                log.info("%s %s %s: cos %.3f sign %.3f", model, size, label,
                         rows[-1]["cosine"], rows[-1]["sign"])  # fmt: skip
    real = plan_real(queries) if args.real else []
    if args.out is not None:
        args.out.mkdir(parents=True, exist_ok=True)
        cmd = "python benchmarks/attention_estimates.py " + shlex.join(argv)
        text = render(rows, cmd, time.perf_counter() - t0) + render_real(real)
        (args.out / "attention-estimates.md").write_text(text)
    return rows


#: the memory rungs every real-size plan below takes (the ladder's cheaper rungs)
BASE_RUNGS = ["bf16", "gradient-checkpointing", "vae-slicing", "vae-tiling"]


def plan_real(queries: list[int]) -> list[dict[str, Any]]:
    """Planned peak of one Vid-Freeze step on CogVideoX-5b-I2V per estimate (no weights)."""
    from stillguard.plan import plan

    out = []
    for label, opts in (
        [("exact", {"attention_mode": "exact"})]
        + [
            (f"sampled {q} rows", {"attention_mode": "sampled", "max_queries": q})
            for q in sorted({*queries, 32, 128}, reverse=True)
        ]
        + [("pooled", {"attention_mode": "pooled"})]
    ):
        p = plan("cogvideox-i2v", rungs=BASE_RUNGS, method_options=opts, gpu_memory="80GiB")
        out.append({"estimate": label, "peak": p.peak_bytes, "need": p.need_bytes, "fits": p.fits})
        log.info("real size %s: peak %.2f GiB", label, p.peak_bytes / 2**30)
    return out


def render_real(real: list[dict[str, Any]]) -> str:
    if not real:
        return ""
    lines = [
        "",
        "## Real size: CogVideoX-5b-I2V (planned, not measured)",
        "",
        "One Vid-Freeze step at 480x720, 49 frames (17,550 video tokens per map, 42 layers), "
        f"rungs {', '.join(BASE_RUNGS)}, planned on fake tensors by `stillguard.plan.plan` (memory "
        "is exact for the tensors PyTorch allocates; the need adds the planner's margin).",
        "",
        "| estimate | planned peak GiB | need GiB | fits 80 GiB |",
        "|---|---|---|---|",
    ]
    for r in real:
        lines.append(f"| {r['estimate']} | {r['peak'] / 2**30:.2f} | {r['need'] / 2**30:.2f} | "
                     f"{'yes' if r['fits'] else 'no'} |")  # fmt: skip
    return "\n".join(lines) + "\n"


def render(rows: list[dict[str, Any]], cmd: str, seconds: float) -> str:
    lines = [
        "# Attention estimates against Vid-Freeze's exact maps",
        "",
        f"Generated by `{cmd}` ({seconds:.0f} s on a shared, loaded 2-core CPU machine); "
        "method in the script's docstring. Cosine and sign agreement of the image gradient of "
        "Vid-Freeze's loss under each estimate with the exact maps' gradient (same timestep, noise "
        "and image), mean (and minimum) over draws; recorded MiB: attention probabilities kept "
        "for one step.",
        "",
        "| model | attack size | latent (F x C x h x w) | estimate | gradient cosine (min) | "
        "sign agreement | recorded MiB |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            lines.append(f"| {r['model']} | {r['size']} | not supported: {r['error']} | | | | |")
            continue
        lines.append(
            f"| {r['model']} | {r['size']} | {r['latent']} | {r['estimate']} | "
            f"{r['cosine']:.3f} ({r['cos_min']:.3f}) | {r['sign']:.3f} | {r['mib']:.3f} |"
        )
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
