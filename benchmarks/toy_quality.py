"""Measure a shipped toy I2V model: motion and first-frame fidelity on unseen inputs.

Usage::

    OMP_NUM_THREADS=1 python benchmarks/toy_quality.py [--model toy|toy-wan] [--weights DIR]
        [--n-synthetic 16] [--steps N] [--seeds 2] [--out runs/toy/quality]

``--model`` picks the toy (``toy``: the CogVideoX-family one, :mod:`stillguard.toy.build`;
``toy-wan``: the Wan-family one, :mod:`stillguard.toy.wan_build`); both are run through their
plain diffusers pipeline with the shipped defaults, so the numbers compare.

Inputs: held-out synthetic scenes (a seed stream never used in training; reference = their true
videos, and the same videos through the VAE only, the realistic ceiling) and scikit-image's sample
photos (reference = the training camera move applied to the photo). Reports mean Farneback flow
magnitude (px/frame), temporal dissimilarity (1 - SSIM of consecutive frames), drift (mean |last -
first| in 0-255 steps), frame-0 PSNR to the input, and the direction cosine of the mean flow vector
against the reference. Writes ``quality.json`` and a PNG strip per set under ``--out``.
"""

from __future__ import annotations

import argparse
import json
import logging
import time
from pathlib import Path

import numpy as np
import torch

from stillguard.measure import motion
from stillguard.toy import build, wan_build
from stillguard.toy.training import quality

logger = logging.getLogger("toy_quality")


def _strip(rows: list[torch.Tensor]) -> np.ndarray:
    """List of ``(F,3,H,W)`` videos -> one uint8 image, a row of frames per video."""
    out = [torch.cat(list(v), -1) for v in rows]  # (3, H, F*W)
    return (torch.cat(out, -2).permute(1, 2, 0).clamp(0, 1) * 255).round().byte().numpy()


def _vae_roundtrip(pipe, video: torch.Tensor) -> torch.Tensor:
    with torch.no_grad():
        x = video.permute(0, 2, 1, 3, 4).mul(2).sub(1).to(pipe.vae.dtype)
        rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample
    return rec.float().add(1).div(2).clamp(0, 1).permute(0, 2, 1, 3, 4)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--model", choices=("toy", "toy-wan"), default="toy")
    ap.add_argument("--weights", type=Path, default=None, help="pipeline folder (default: shipped)")
    ap.add_argument("--n-synthetic", type=int, default=16)
    ap.add_argument("--photos", nargs="*", default=list(quality.PHOTOS))
    ap.add_argument(
        "--steps", type=int, default=None, help="sampler steps (default: stillguard.json)"
    )
    ap.add_argument("--seeds", type=int, default=2, help="sampling seeds per input")
    ap.add_argument("--data-seed", type=int, default=0, help="the training --seed")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--out", type=Path, default=None, help="default runs/<model>/quality")
    args = ap.parse_args()
    args.out = args.out or Path("runs") / args.model / "quality"
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    torch.set_num_threads(args.threads)
    args.out.mkdir(parents=True, exist_ok=True)

    family = wan_build if args.model == "toy-wan" else build
    pipe, embeds, defaults = family.load_pipeline(args.weights)
    if args.steps:
        defaults["num_inference_steps"] = args.steps
    train = quality.training_stats(args.data_seed, 64)
    logger.info("training videos: %s", train)

    cases = [("synthetic", f"heldout-{i}", *quality.synthetic_case(args.data_seed, i))
             for i in range(args.n_synthetic)]  # fmt: skip
    cases += [("photos", name, *quality.photo_case(name)) for name in args.photos]
    rows: dict[str, list[dict]] = {"synthetic": [], "photos": []}
    strips: dict[str, list[torch.Tensor]] = {"synthetic": [], "photos": []}
    seconds = []
    for kind, name, image, ref in cases:
        for seed in range(args.seeds):
            t0 = time.perf_counter()
            video = quality.generate(pipe, embeds, defaults, image, seed)
            seconds.append(time.perf_counter() - t0)
            st = quality.video_stats(video, image, ref)
            st["psnr_vae_ceiling"] = quality.vae_ceiling(pipe, image)
            if kind == "synthetic":
                st["flow_vae_only"] = motion.flow_magnitude(_vae_roundtrip(pipe, ref))
            st["fails"] = len(quality.animation_failures(st, train))
            rows[kind].append(st | {"name": name, "seed": seed})
            if seed == 0 and len(strips[kind]) < 6:
                strips[kind] += [ref[0], video[0]]
        logger.info("%s %s: %s", kind, name, {k: round(v, 3) for k, v in st.items()})

    import imageio.v3 as iio

    summary = {
        "training_videos": train,
        "defaults": defaults,
        "sec_per_video": float(np.mean(seconds)),
    }
    for kind in rows:
        if not rows[kind]:
            continue
        iio.imwrite(args.out / f"{kind}.png", _strip(strips[kind]))
        nums = [{k: v for k, v in r.items() if k not in ("name", "seed")} for r in rows[kind]]
        summary[kind] = quality.summarize(nums) | {"n_videos": len(nums)}
    (args.out / "quality.json").write_text(json.dumps({"summary": summary, "rows": rows}, indent=1))

    print(f"\n{args.model}: sampler steps {defaults['num_inference_steps']}, {args.seeds} seeds per input, "
          f"{summary['sec_per_video']:.2f} s/video")  # fmt: skip
    print("| inputs | videos | flow gen | flow ref | gen/ref (median) | 1-SSIM gen | 1-SSIM ref "
          "| drift gen | frame-0 PSNR (VAE ceiling) | direction cos |")  # fmt: skip
    print("|---|---|---|---|---|---|---|---|---|---|")
    print(f"| training videos | 64 | | {train['flow']:.3f} | | | {train['temporal_dissimilarity']:.4f} "
          f"| {train['drift']:.1f} | | |")  # fmt: skip
    for kind in ("synthetic", "photos"):
        if kind not in summary:
            continue
        s = summary[kind]
        ratio = np.median([r["flow"] / r["flow_reference"] for r in rows[kind]])
        print(f"| {kind} | {s['n_videos']} | {s['flow']:.3f} | {s['flow_reference']:.3f} | "
              f"{ratio:.2f} | {s['temporal_dissimilarity']:.4f} | "
              f"{s['temporal_dissimilarity_reference']:.4f} | {s['drift']:.1f} | "
              f"{s['psnr_first']:.1f} dB ({s['psnr_vae_ceiling']:.1f}) | "
              f"{s['direction_cosine']:.2f} |")  # fmt: skip
    if "synthetic" in summary:
        print(f"Held-out true videos through the VAE only: flow "
              f"{summary['synthetic']['flow_vae_only']:.3f}")  # fmt: skip
    fails = {k: sum(r["fails"] > 0 for r in rows[k]) for k in rows if rows[k]}
    print(f"Videos failing the test's animation criteria: {fails}")


if __name__ == "__main__":
    main()
