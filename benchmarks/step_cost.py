"""What one protection step costs: the loop's overhead, and the truncated forward.

    python benchmarks/step_cost.py [--model toy] [--steps 5] [--repeats 3] [--threads 1]

Measured in one run on the same adapter and image, median over ``--repeats`` (after a warm-up):

* **loop overhead**: seconds per step of ``protect()`` with ``advdm`` and with ``vid-freeze`` vs a
  bare forward + backward of the same network (``adapter.denoise`` of the image, an MSE loss,
  its gradient to the image): the ratio is what the loop, the space, the method and the capture
  add on top of the model itself;
* **truncated forward**: vid-freeze on the first ``N`` of the model's attention layers with
  ``truncate=True`` (the denoiser stops after layer N) vs ``truncate=False`` (full depth), for N =
  1, 2 and half the layers; the losses are checked to be equal.

Images per second at batch sizes 1/2/4 are measured by ``benchmarks/batch_throughput.py``.
Numbers are ratios from one run on this machine; they are not timed assertions.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time


def _median(fn, repeats: int) -> float:
    fn()  # warm-up
    out = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        out.append(time.perf_counter() - t)
    return statistics.median(out)


def main(argv: list[str] | None = None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--model", default="toy", help="toy or tiny (cogvideox-i2v)")
    ap.add_argument("--steps", type=int, default=5)
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    import torch

    torch.set_num_threads(args.threads)
    from stillguard import load_adapter, protect
    from stillguard.methods.base import draw

    adapter = load_adapter("cogvideox-i2v", model=args.model)
    x = torch.rand(1, 3, adapter.height, adapter.width, generator=torch.Generator().manual_seed(0))

    def bare() -> None:
        g = torch.Generator().manual_seed(1)
        for _ in range(args.steps):
            xi = x.clone().requires_grad_(True)
            t, noise = draw(adapter, g)
            d = adapter.denoise(xi, t, noise)
            torch.autograd.grad(torch.nn.functional.mse_loss(d.pred, d.target), xi)

    def step(method: str, **opts):
        return lambda: protect(x, adapter, method, steps=args.steps, seed=0, method_options=opts)

    per = lambda s: s / args.steps  # noqa: E731
    base = per(_median(bare, args.repeats))
    rows = [("bare forward+backward", base, 1.0)]
    for m in ("advdm", "vid-freeze"):
        s = per(_median(step(m), args.repeats))
        rows.append((f"protect step, {m}", s, s / base))
    n_layers = len(adapter.layer_names("attention"))
    trunc = []
    for n in sorted({1, 2, max(1, n_layers // 2)}):
        full = per(_median(step("vid-freeze", layers=f"first:{n}", truncate=False), args.repeats))
        cut = per(_median(step("vid-freeze", layers=f"first:{n}", truncate=True), args.repeats))
        a = protect(x, adapter, "vid-freeze", steps=2, method_options={"layers": f"first:{n}"})
        b = protect(x, adapter, "vid-freeze", steps=2,
                    method_options={"layers": f"first:{n}", "truncate": False})  # fmt: skip
        trunc.append((n, n_layers, full, cut, cut / full, a.losses == b.losses))
    print(f"cogvideox-i2v ({args.model}), {args.steps} steps, median of {args.repeats}, "
          f"{args.threads} thread(s)")  # fmt: skip
    print(f"{'what':<32} {'s/step':>8} {'ratio':>7}")
    for what, s, r in rows:
        print(f"{what:<32} {s:>8.4f} {r:>7.2f}")
    print(
        f"\n{'vid-freeze first N of L layers':<32} {'full s':>8} {'cut s':>8} {'cut/full':>9} same loss"
    )
    for n, L, full, cut, r, same in trunc:
        print(f"{f'N={n} of {L}':<32} {full:>8.4f} {cut:>8.4f} {r:>9.2f} {same}")
    return {"overhead": rows, "truncated": trunc}


if __name__ == "__main__":
    main()
