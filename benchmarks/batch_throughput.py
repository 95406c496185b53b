"""Images per second at batch sizes 1/2/4: what ``protect_batch`` gains, and what it changes.

    python benchmarks/batch_throughput.py [--model toy] [--images 8] [--steps 5]
                                          [--batch-sizes 1,2,4] [--method vid-freeze]
                                          [--threads 2] [--device cpu] [--out docs/batch.md]

Measured in one run on one adapter: the same ``--images`` photos (the model's working size, drawn
from a fixed seed) protected with ``protect_batch`` at each batch size, after one warm-up batch of that size.
For each batch size it prints seconds per image (the best of ``--repeats`` timed runs, so that
other load on the machine counts least), images per second, the speed-up over batch 1,
the planned peak memory of one step at that batch (``stillguard.plan``, the same dtype as the
run), and how far the outputs are from batch 1's: the largest difference in 8-bit levels and
the fraction of pixel values that differ (float rounding of batched kernels; the draws are the
same). On a CPU whose cores a batch-1 step already keeps busy, little speed-up is expected; on a
GPU, batching fills the device. Ratios from one run, never timed assertions.
"""

from __future__ import annotations

import argparse
import sys
import time


def main(argv: list[str] | None = None) -> list[dict]:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="toy", help="toy or tiny (cogvideox-i2v)")
    ap.add_argument("--images", type=int, default=8)
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--batch-sizes", default="1,2,4")
    ap.add_argument("--method", default="vid-freeze")
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=3, help="timed runs per batch size (best kept)")
    ap.add_argument("--out", default=None, help="also write the table as markdown here")
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(args.threads)
    from stillguard import load_adapter, protect_batch
    from stillguard.plan import plan
    from stillguard.plan.gpus import human_bytes

    sizes = [int(b) for b in args.batch_sizes.split(",")]
    adapter = load_adapter("cogvideox-i2v", model=args.model, device=args.device)
    g = torch.Generator().manual_seed(0)
    shape = (1, 3, adapter.height, adapter.width)
    images = [torch.rand(shape, generator=g) for _ in range(args.images)]
    kw = dict(steps=args.steps, seed=0)
    rows, ref = [], None
    for b in sizes:
        protect_batch(images[:b], adapter, args.method, batch_size=b, **kw)  # warm-up at this size
        best = float("inf")
        for _ in range(args.repeats):
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            out = protect_batch(images, adapter, args.method, batch_size=b, **kw)
            if args.device.startswith("cuda"):
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        per_image = best / len(images)
        ref = ref or out
        pairs = zip(out, ref, strict=True)
        diff = torch.cat([((p.image - r.image).abs() * 255).round() for p, r in pairs])
        peak = plan("cogvideox-i2v", model=args.model, method=args.method, dtype="float32",
                    steps=args.steps, batch_size=b).peak_bytes  # fmt: skip
        rows.append({"batch_size": b, "seconds_per_image": per_image,
                     "images_per_second": 1 / per_image, "peak_bytes": peak,
                     "max_levels": int(diff.max()), "differing": float((diff > 0).float().mean())})  # fmt: skip
    for r in rows:
        r["speedup"] = rows[0]["seconds_per_image"] / r["seconds_per_image"]
    head = (f"cogvideox-i2v ({args.model}), {args.method}, {len(images)} images "
            f"{shape[2]}x{shape[3]}, {args.steps} steps, {args.threads} thread(s), {args.device}, "
            f"best of {args.repeats}")  # fmt: skip
    lines = [head, "", "| batch | s/image | images/s | speed-up | planned peak | max levels vs batch 1 "
             "| values differing |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for r in rows:
        lines.append(
            f"| {r['batch_size']} | {r['seconds_per_image']:.3f} | {r['images_per_second']:.2f} "
            f"| {r['speedup']:.2f}x | {human_bytes(r['peak_bytes'])} | {r['max_levels']} "
            f"| {r['differing']:.2%} |"
        )
    print("\n".join(lines))
    if args.out:
        from pathlib import Path

        Path(args.out).write_text("\n".join(lines) + "\n")
    return rows


if __name__ == "__main__":
    main()
