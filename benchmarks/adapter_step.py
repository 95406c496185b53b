"""Time one tiny forward+backward per registered adapter: encode -> denoise with every attention
layer captured -> Vid-Freeze attention loss -> backward to the image.

    .venv/bin/python benchmarks/adapter_step.py [--repeats 10] [--mode exact|sampled|pooled]

Prints the median wall time per adapter and the ratio to the fastest, measured in one run.
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from stillguard.adapters import load_adapter
from stillguard.losses import attention_frobenius
from stillguard.registry import ADAPTERS


def step_seconds(name: str, repeats: int, mode: str) -> float:
    adapter = load_adapter(name, model="tiny")
    kind = "attention" if "attention-joint" in adapter.capabilities else "attention-temporal"
    layers = adapter.layer_names(kind)
    gen = torch.Generator().manual_seed(0)
    x = torch.rand(1, 3, adapter.height, adapter.width, generator=gen)
    times = []
    for _ in range(repeats + 1):  # the first call warms up
        xi = x.clone().requires_grad_(True)
        t0 = time.perf_counter()
        t = adapter.sample_timesteps(1, gen)
        noise = torch.randn(adapter.latent_shape(1), generator=gen)
        with adapter.capture(attention=layers, mode=mode, max_queries=16, generator=gen) as cap:
            adapter.denoise(xi, t, noise)
            loss = attention_frobenius([m for name in layers for m in cap.attention[name]])
        loss.backward()
        assert xi.grad is not None and torch.isfinite(xi.grad).all() and xi.grad.abs().sum() > 0
        times.append(time.perf_counter() - t0)
    return statistics.median(times[1:])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--repeats", type=int, default=10)
    ap.add_argument("--mode", default="exact", choices=("exact", "sampled", "pooled"))
    args = ap.parse_args()
    print(f"torch {torch.__version__}, {torch.get_num_threads()} threads, mode {args.mode}")
    res = {name: step_seconds(name, args.repeats, args.mode) for name in ADAPTERS.names()}
    fastest = min(res.values())
    for name, sec in res.items():
        print(f"{name:15s} fwd+bwd median {sec * 1000:7.1f} ms   x{sec / fastest:.2f} of fastest")


if __name__ == "__main__":
    main()
