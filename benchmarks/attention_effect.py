"""Does Vid-Freeze's loss move on the toy model, and does freezing need uniform attention?

Usage::

    OMP_NUM_THREADS=2 python benchmarks/attention_effect.py --model toy [--images 4] [--steps 100]
        [--draws 16] [--out docs/]

For each held-out image (``benchmarks/efficacy.py``'s list) the image is protected at 8/255 with
``vid-freeze`` and with ``rollout-freeze`` (default settings, seed 0, rounded to the saved 8-bit
values), and two quantities are measured on the clean, both protected and a same-budget noise
image, with the same ``--draws`` (timestep, noise) draws for every image:

* ``excess``: Vid-Freeze's attention loss minus its uniform floor (0 = perfectly uniform attention),
  mean over draws, as a ratio to the clean image's;
* ``motion``: rollout-freeze's loss (frame-to-frame change of the generated latent video through the
  full sampler), mean over draws, as a ratio to the clean image's.

If Vid-Freeze's ``excess`` ratio stays near 1 the attack cannot move attention on this model; if
rollout-freeze lowers ``motion`` without lowering ``excess``, freezing this model does not go
through uniform attention.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from pathlib import Path
from typing import Any

import numpy as np
import torch

log = logging.getLogger("attention_effect")
HERE = Path(__file__).resolve().parent
if str(HERE) not in sys.path:  # the sibling efficacy.py: held-out images, stats, JSON helpers
    sys.path.insert(0, str(HERE))


def mean_terms(
    method: Any, adapter: Any, x_clean: torch.Tensor, x: torch.Tensor, draws: int
) -> dict:
    """Mean of each logged term of ``method`` at ``x`` over ``draws`` fixed draws (seed 123)."""
    state = method.setup(adapter, x_clean, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(123)
    acc: dict[str, float] = {}
    with torch.no_grad():
        for _ in range(draws):
            for k, v in method.loss(adapter, x, g, state)[1].items():
                acc[k] = acc.get(k, 0.0) + v / draws
    return acc


def main(argv: list[str] | None = None) -> dict[str, Any]:
    from stillguard.adapters import load_adapter
    from stillguard.loop import protect
    from stillguard.measure.evaluate import noise_image
    from stillguard.plugins import METHODS

    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--model", default="toy")
    p.add_argument("--images", type=int, default=4)
    p.add_argument("--steps", type=int, default=100)
    p.add_argument("--draws", type=int, default=16)
    p.add_argument("--out", type=Path, default=None, help="write attention-effect.md here")
    args = p.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s", datefmt="%H:%M:%S")
    import efficacy as eff

    adapter = load_adapter("cogvideox-i2v", model=args.model)
    vf, rf = METHODS.build("vid-freeze"), METHODS.build("rollout-freeze")
    rows = []
    for name, _, img in eff.held_out_images(args.images):
        x0 = torch.round(img * 255) / 255
        subjects = {
            "vid-freeze": protect(x0, adapter, "vid-freeze", steps=args.steps, seed=0).image,
            "rollout-freeze": protect(
                x0, adapter, "rollout-freeze", steps=args.steps, seed=0
            ).image,
            "noise": noise_image(x0, 8 / 255, seed=0),
        }
        clean_e = mean_terms(vf, adapter, x0, x0, args.draws)["excess"]
        clean_m = mean_terms(rf, adapter, x0, x0, args.draws)["motion"]
        for subject, x in subjects.items():
            e = mean_terms(vf, adapter, x0, x, args.draws)["excess"] / clean_e
            m = mean_terms(rf, adapter, x0, x, args.draws)["motion"] / clean_m
            rows.append({"image": name, "subject": subject, "excess_ratio": e, "motion_ratio": m})
            log.info("%s %s: excess ratio %.4f, rollout motion ratio %.4f", name, subject, e, m)
    lines = [
        "# Attention vs motion on the toy model",
        "",
        f"Measured with `python benchmarks/attention_effect.py {shlex.join(sys.argv[1:] if argv is None else argv)}`"
        f" ({args.images} held-out images, {args.steps} PGD steps at 8/255, {args.draws} fixed draws)."
        " Ratios to the clean image; method: the script's docstring.",
        "",
        "| image | protected with | attention excess ratio (vid-freeze loss) | "
        "rollout motion ratio (rollout-freeze loss) |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {r['image']} | {r['subject']} | {r['excess_ratio']:.4f} | {r['motion_ratio']:.4f} |"
        for r in rows
    ]
    lines += ["", "| protected with | mean excess ratio | mean motion ratio |", "|---|---|---|"]
    for subject in ("vid-freeze", "rollout-freeze", "noise"):
        sel = [r for r in rows if r["subject"] == subject]
        lines.append(
            f"| {subject} | {np.mean([r['excess_ratio'] for r in sel]):.4f} | "
            f"{np.mean([r['motion_ratio'] for r in sel]):.4f} |"
        )
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
        (args.out / "attention-effect.md").write_text(text)
    return {"rows": rows, "markdown": text}


if __name__ == "__main__":
    main()
