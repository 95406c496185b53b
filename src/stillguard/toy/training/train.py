"""Train the shipped toy image-to-video model from scratch.

Usage::

    python -m stillguard.toy.training.train --out runs/toy --minutes-vae 15 --minutes-transformer 45 \\
        --seed 0 [--device auto] [--threads 2] [--resume] [--export src/stillguard/toy/weights]
    python -m stillguard.toy.training.train --family wan --out runs/toy-wan ... \\
        [--export src/stillguard/toy/weights_wan]

``--family`` picks the architecture: ``cogvideox`` (the shipped toy, :mod:`..build` and
:mod:`.stages`) or ``wan`` (the Wan-family toy, :mod:`..wan_build` and :mod:`.wan_stages`); data,
budgets, seeds and checkpoints are the same.

Stages: VAE (fresh synthetic videos every step) -> cache latents of a fixed set of videos ->
transformer on the cached latents. Every stage checkpoints under ``--out`` every
``--checkpoint-minutes``; ``--resume`` continues from the last checkpoint (finished stages are
skipped). The result is always written to ``<out>/pipeline`` (fp16 diffusers folder) and, with
``--export``, to that folder too. A ``train_summary.json`` records the command, seed, steps, wall
times and final losses. CUDA is used when available with ``--device auto``.
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
import time
from pathlib import Path

import torch

logger = logging.getLogger(__name__)


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m stillguard.toy.training.train", description=__doc__.split("\n")[0]
    )
    p.add_argument("--family", choices=("cogvideox", "wan"), default="cogvideox")
    p.add_argument("--out", type=Path, required=True, help="run folder (checkpoints, logs)")
    p.add_argument("--minutes-vae", type=float, default=15.0, help="VAE training budget")
    p.add_argument("--minutes-transformer", type=float, default=45.0, help="transformer budget")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", help="auto, cpu, cuda, cuda:1, ...")
    p.add_argument("--threads", type=int, default=2, help="torch.set_num_threads on CPU")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint")
    p.add_argument("--export", type=Path, default=None, help="also write the pipeline here")
    p.add_argument("--checkpoint-minutes", type=float, default=5.0)
    p.add_argument("--n-latents", type=int, default=2500, help="videos in the latent cache")
    p.add_argument("--batch", type=int, default=16, help="transformer batch size")
    p.add_argument("--steps", type=int, default=None, help="DDIM steps written as the default")
    return p


def resolve_device(name: str) -> torch.device:
    """``auto`` -> CUDA when available, else CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def main(argv: list[str] | None = None) -> int:
    """Run the full training; returns a process exit code."""
    args = _parser().parse_args(argv)
    if args.family == "wan":
        from stillguard.toy import wan_build as build
        from stillguard.toy.training import wan_stages as stages
    else:
        from stillguard.toy import build
        from stillguard.toy.training import stages

    args.out.mkdir(parents=True, exist_ok=True)
    logging.basicConfig(
        level=logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    torch.set_num_threads(args.threads)
    device = resolve_device(args.device)
    logger.info("device %s, %d threads, args %s", device, torch.get_num_threads(), vars(args))
    s = stages.Settings(
        out=args.out,
        seed=args.seed,
        device=device,
        minutes_vae=args.minutes_vae,
        minutes_transformer=args.minutes_transformer,
        n_latents=args.n_latents,
        batch=args.batch,
        checkpoint_minutes=args.checkpoint_minutes,
        resume=args.resume,
    )
    t0 = time.time()
    vae, vae_log = stages.train_vae(s)
    t1 = time.time()
    cache = stages.cache_latents(vae, s)
    t2 = time.time()
    if args.family == "wan":
        scale = None  # per-channel latents_mean / latents_std, in the VAE config
        transformer, tr_log = stages.train_transformer(cache, s)
    else:
        scale = float(vae.config.scaling_factor)
        transformer, tr_log = stages.train_transformer(cache, scale, s)
    t3 = time.time()
    steps = args.steps or build.DEFAULT_STEPS
    for dest in [args.out / "pipeline"] + ([args.export] if args.export else []):
        build.export(vae, transformer, dest, num_inference_steps=steps)
    n_params = {
        "vae": sum(p.numel() for p in vae.parameters()),
        "transformer": sum(p.numel() for p in transformer.parameters()),
    }
    summary = {
        "command": "python -m stillguard.toy.training.train "
        + " ".join(argv if argv is not None else sys.argv[1:]),
        "family": args.family,
        "seed": args.seed,
        "device": str(device),
        "threads": args.threads,
        "params": n_params,
        "scaling_factor": scale,
        "this_session_wall_min": {
            "vae": (t1 - t0) / 60,
            "cache": (t2 - t1) / 60,
            "transformer": (t3 - t2) / 60,
        },
        "vae": vae_log[-1] if vae_log else None,
        "transformer": tr_log[-1] if tr_log else None,
        "vae_log": vae_log,
        "transformer_log": tr_log,
    }
    (args.out / "train_summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    logger.info("done in %.1f min: %s", (t3 - t0) / 60, json.dumps(summary["transformer"]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
