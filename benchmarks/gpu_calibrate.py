"""Calibrate the planner on a GPU: real-size configurations with random weights vs the plan.

    PYTHONPATH=src python benchmarks/gpu_calibrate.py [--targets cogvideox-i2v,svd] [--device cuda]
    PYTHONPATH=src python benchmarks/gpu_calibrate.py --tiny --device cpu   # the CPU self-test

For each target and configuration (method + memory rungs) it builds the target from its shipped
config with random weights on the device (``from_config``; compute and memory do not depend on
weight values), runs the method's setup and one protection step, and compares with
:func:`stillguard.plan.plan` (fake tensors, no weights):

    * peak: ``torch.cuda.max_memory_allocated`` during setup + step minus what was allocated
      before (weights), plus the weights, vs the planned peak (on CPU: the storage tracker on real
      tensors, since the allocator has no peak counter there);
    * time: median wall time of a step (after a warm-up, synchronised), vs the planned seconds at
      the assumed sustained rate; their ratio calibrates ``SUSTAINED_FRACTION`` of
      ``stillguard/plan/gpus.py`` (``achieved TFLOP/s`` = counted FLOPs / measured seconds).
It writes a markdown table naming the device (``--out``) and prints it.
"""

from __future__ import annotations

import argparse
import statistics
import time
from pathlib import Path
from typing import Any

import torch

CONFIGS = (
    ("vid-freeze", ("gradient-checkpointing", "pooled-attention")),
    ("vid-freeze", ("pooled-attention",)),
    ("anti-i2v", ("gradient-checkpointing",)),
)


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def run_config(
    target: str, method: str, rungs: tuple[str, ...], *, tiny: bool, device: torch.device,
    dtype: str, gpu: str, repeats: int,
) -> dict[str, Any]:  # fmt: skip
    """Plan and measure one configuration; returns one table row."""
    from stillguard.adapters import resolve_dtype
    from stillguard.plan import plan
    from stillguard.plan import rungs as R
    from stillguard.plan.agreement import measured
    from stillguard.plan.build import instantiate, quiet
    from stillguard.plan.fake import modules
    from stillguard.plan.memory import tensor_bytes
    from stillguard.plan.step import resident_tensors, setup_method, step_gradient
    from stillguard.registry import METHODS, SPACES

    model = "tiny" if tiny else None
    p = plan(target, model=model, method=method, rungs=list(rungs), dtype=dtype, gpu=gpu)
    s = R.apply_all(list(rungs), R.Settings(dtype))
    with quiet():
        adapter, _ = instantiate(target, model, dtype=resolve_dtype(s.dtype), options=s.adapter,
                                 device=device)  # fmt: skip
    weights = tensor_bytes(resident_tensors(modules(adapter), adapter))
    m = METHODS.build(method, **s.method)
    m.check(adapter)
    space = SPACES.build(m.default_space)
    x = torch.rand(1, 3, *p.image_size, generator=torch.Generator().manual_seed(1)).to(device)
    gen = torch.Generator().manual_seed(0)
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
        before = torch.cuda.memory_allocated(device)
    state = setup_method(m, adapter, x, gen)
    param = space.init(x, gen, True)
    times = []
    for _ in range(repeats + 1):  # the first step warms up (kernels, caches)
        _sync(device)
        t0 = time.perf_counter()
        step_gradient(m, state, adapter, space, x, param, gen)
        _sync(device)
        times.append(time.perf_counter() - t0)
    if device.type == "cuda":
        peak = torch.cuda.max_memory_allocated(device) - before + weights
        how = "max_memory_allocated"
    else:
        peak = measured(target, model or "tiny", method=method, method_options=s.method,
                        adapter=adapter, image_size=p.image_size).peak_bytes  # fmt: skip
        how = "tracker on real tensors"
    sec = statistics.median(times[1:])
    return {
        "target": target, "method": method, "rungs": ", ".join(p.rungs) or "none",
        "planned_peak": p.peak_bytes, "measured_peak": peak, "how": how,
        "planned_s": p.seconds_per_step, "measured_s": sec,
        "achieved_tflops": p.flops_per_step / p.eot_draws / sec / 1e12,
    }  # fmt: skip


def markdown(rows: list[dict[str, Any]], device_name: str, gpu: str) -> str:
    gib = 2**30
    lines = [
        f"# Planner calibration on {device_name}",
        "",
        f"Planned time assumes the {gpu} class of `stillguard/plan/gpus.py`. Peak: planned on fake "
        "tensors vs measured on the device with random weights "
        f"({rows[0]['how'] if rows else '-'}).",
        "",
        "| target | method | rungs | planned peak GiB | measured peak GiB | ratio "
        "| planned s/step | measured s/step | ratio | achieved TFLOP/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        lines.append(
            f"| {r['target']} | {r['method']} | {r['rungs']} | {r['planned_peak'] / gib:.4g} "
            f"| {r['measured_peak'] / gib:.4g} | {r['planned_peak'] / r['measured_peak']:.3f} "
            f"| {r['planned_s']:.3g} | {r['measured_s']:.3g} "
            f"| {r['planned_s'] / r['measured_s']:.3g} | {r['achieved_tflops']:.3g} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--targets", default="cogvideox-i2v,svd")
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--tiny", action="store_true", help="tiny random models (CPU self-test)")
    ap.add_argument("--dtype", default=None, help="default: bf16, or float32 with --tiny")
    ap.add_argument("--gpu", default="H100", help="GPU class the plan's time assumes")
    ap.add_argument("--repeats", type=int, default=3)
    ap.add_argument(
        "--configs",
        default=None,
        help="method:rung+rung, comma-separated (default: "
        + ",".join(f"{m}:{'+'.join(r)}" for m, r in CONFIGS)
        + ")",
    )
    ap.add_argument("--out", type=Path, default=Path("docs/gpu-calibration.md"))
    args = ap.parse_args(argv)
    device = torch.device(args.device)
    if device.type == "cuda" and device.index is None:
        device = torch.device("cuda", 0)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise SystemExit("no CUDA device here: run with --tiny --device cpu for the CPU self-test")
    dtype = args.dtype or ("float32" if args.tiny else "bf16")
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU (self-test)"
    configs = CONFIGS
    if args.configs:
        configs = tuple(
            (c.split(":")[0], tuple(r for r in c.partition(":")[2].split("+") if r))
            for c in args.configs.split(",")
        )
    rows = []
    for target in args.targets.split(","):
        for method, rungs in configs:
            try:
                rows.append(run_config(target.strip(), method, rungs, tiny=args.tiny,
                                       device=device, dtype=dtype, gpu=args.gpu,
                                       repeats=args.repeats))  # fmt: skip
            except Exception as err:  # noqa: BLE001 - report the row, keep calibrating the rest
                print(f"{target} {method} {'+'.join(rungs)}: skipped: {type(err).__name__}: {err}")
    text = markdown(rows, name, args.gpu)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(text, encoding="utf-8")
    print(text)
    return rows


if __name__ == "__main__":
    main()
