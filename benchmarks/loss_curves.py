"""Loss curves of vid-freeze and anti-i2v on the tiny CogVideoX adapter, and what lands on disk.

For each method: the per-step loss (a one-sample estimate at a random timestep, so it is noisy),
the same loss averaged over fixed draws for the clean, the protected and a same-budget random-noise
image (the comparison that shows whether the optimisation worked), and the L-infinity (8-bit
steps) and PSNR measured on the saved PNG against the 8-bit original.

Run: ``OMP_NUM_THREADS=1 python benchmarks/loss_curves.py [--steps 50] [--model tiny]``.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from stillguard.adapters import load_adapter
from stillguard.app.outputs import save_protected
from stillguard.loop import protect
from stillguard.plugins import METHODS


def test_image(size: tuple[int, int] = (96, 80)) -> torch.Tensor:
    """A smooth random picture with a few sharp discs, ``(1,3,H,W)`` in [0,1], seed 0."""
    g = torch.Generator().manual_seed(0)
    low = torch.rand(1, 3, 6, 5, generator=g)
    img = torch.nn.functional.interpolate(low, size=size, mode="bicubic").clamp(0, 1)
    yy, xx = torch.meshgrid(torch.arange(size[0]), torch.arange(size[1]), indexing="ij")
    for _ in range(3):
        cy, cx, r = (torch.rand(3, generator=g) * torch.tensor([size[0], size[1], 12])).tolist()
        color = torch.rand(3, generator=g).view(3, 1, 1)
        mask = ((yy - cy) ** 2 + (xx - cx) ** 2) < (r + 6) ** 2
        img[0] = torch.where(mask, color, img[0])
    return img


def fixed_loss(name: str, adapter, x_clean: torch.Tensor, x: torch.Tensor, n: int = 8) -> float:
    m = METHODS.build(name)
    state = m.setup(adapter, x_clean, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return sum(float(m.loss(adapter, x, g, state)[0]) for _ in range(n)) / n


def png_stats(path: Path, original: torch.Tensor) -> tuple[int, float]:
    with Image.open(path) as im:
        saved = np.asarray(im.convert("RGB")).astype(np.float64)
    orig = np.round(original[0].permute(1, 2, 0).numpy() * 255)
    diff = saved - orig
    mse = float(((diff / 255) ** 2).mean())
    psnr = float("inf") if mse == 0 else -10 * np.log10(mse)
    return int(np.abs(diff).max()), float(psnr)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--steps", type=int, default=50)
    ap.add_argument("--eps", type=float, default=8 / 255)
    ap.add_argument("--model", default="tiny", help="tiny (random weights) or toy (trained)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    adapter = load_adapter("cogvideox-i2v", model=args.model)
    x = test_image()
    out = Path(tempfile.mkdtemp(prefix="stillguard-bench-"))
    noise = protect(x, adapter, "noise", eps=args.eps, seed=0)
    print(
        f"adapter cogvideox-i2v ({args.model}), image {tuple(x.shape)}, eps {args.eps * 255:.1f}/255"
    )
    for name in ("vid-freeze", "anti-i2v"):
        t0 = time.perf_counter()
        p = protect(x, adapter, name, steps=args.steps, eps=args.eps, seed=0)
        secs = time.perf_counter() - t0
        path = save_protected(p, out / f"{name}.png")
        linf, psnr = png_stats(path, p.original)
        curve = " ".join(f"{v:.4f}" for v in p.losses[:: max(1, args.steps // 10)])
        print(f"\n{name}: space {p.config['space']['name']}, {args.steps} steps in {secs:.1f}s")
        print(f"  loss every {max(1, args.steps // 10)} steps: {curve}  (last {p.losses[-1]:.4f})")
        first = np.mean(p.losses[:5])
        last = np.mean(p.losses[-5:])
        print(f"  mean of first 5 steps {first:.4f}, of last 5 steps {last:.4f}")
        print(f"  last terms: { {k: round(v, 4) for k, v in p.terms[-1].items()} }")
        clean = fixed_loss(name, adapter, p.original, p.original)
        prot = fixed_loss(name, adapter, p.original, p.image)
        rand = fixed_loss(name, adapter, p.original, noise.image)
        print(f"  loss on 8 fixed draws: clean {clean:.4f}  noise {rand:.4f}  protected {prot:.4f}")
        print(f"  saved PNG: Linf {linf}/255 (budget {p.config['budget_255']}), PSNR {psnr:.2f} dB")


if __name__ == "__main__":
    main()
