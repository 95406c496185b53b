"""The planner vs reality on this CPU: planned peak memory and FLOPs vs the measured ones.

    PYTHONPATH=src python benchmarks/plan_agreement.py [--cases cogvideox-i2v:tiny:vid-freeze,...]

For each case (target, model, method, memory rungs; float32, the default preset's step) it prints:
    * planned peak: :func:`stillguard.plan.plan` on fake tensors (no data);
    * measured peak: the same step on real CPU tensors through the same storage tracker;
    * RSS: the rise of the process's resident memory during the real step (sampled every
      millisecond from ``/proc/self/statm``) next to the tracked rise (peak minus what was live
      before the step). glibc's ``malloc_trim(0)`` first hands the memory freed by the warm-up
      step back to the system, else the step would reuse it without RSS moving. RSS also sees
      the allocator's own caching and the Python heap, so it is a rough cross-check only;
    * planned and measured FLOPs (the same counter on fake and on real tensors).
Ratios are planned / measured, all from one run.
"""

from __future__ import annotations

import argparse
import ctypes
import os
import threading
import time
from typing import Any

DEFAULT_CASES = (
    "cogvideox-i2v:tiny:vid-freeze,cogvideox-i2v:toy:vid-freeze,"
    "cogvideox-i2v:toy:vid-freeze:gradient-checkpointing+pooled-attention,"
    "cogvideox-i2v:tiny:anti-i2v,cogvideox-i2v:toy:rollout-freeze,"
    "svd:tiny:vid-freeze,svd:tiny:anti-i2v"
)


class RssSampler:
    """Peak resident set size (bytes) of this process while the block runs (Linux only)."""

    def __init__(self, period: float = 0.001) -> None:
        self.period, self.start, self.peak = period, 0, 0
        self._stop = threading.Event()
        self._page = os.sysconf("SC_PAGE_SIZE")

    def rss(self) -> int:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * self._page

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.rss())
            time.sleep(self.period)

    def __enter__(self) -> RssSampler:
        self.start = self.peak = self.rss()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.rss())


def trim_heap() -> None:
    """Return freed heap memory to the system (glibc only; a no-op elsewhere)."""
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


def run_case(target: str, model: str, method: str, rungs: tuple[str, ...] = ()) -> dict[str, Any]:
    import torch

    from stillguard.plan import plan
    from stillguard.plan import rungs as R
    from stillguard.plan.agreement import measured
    from stillguard.plan.build import instantiate, quiet

    s = R.apply_all(list(rungs), R.Settings("float32"))
    p = plan(target, model=model, method=method, dtype="float32", rungs=list(rungs))
    with quiet():
        adapter, _ = instantiate(
            target, model, dtype=torch.float32, options=s.adapter, device="cpu"
        )
    kw = dict(method=method, method_options=s.method, adapter=adapter)
    measured(target, model, **kw)  # warm-up: lazy inits, caches
    trim_heap()
    with RssSampler() as rss:
        m = measured(target, model, **kw)
    return {
        "case": f"{target}/{model}/{method}" + "".join(f" +{r}" for r in rungs),
        "planned_peak": p.peak_bytes,
        "measured_peak": m.peak_bytes,
        "tracked_rise": m.peak_bytes - m.resident_bytes,
        "rss_rise": rss.peak - rss.start,
        "planned_flops": p.flops_per_step,
        "measured_flops": m.step_flops,
        "plan_seconds": p.plan_seconds,
    }


def table(rows: list[dict[str, Any]]) -> list[str]:
    mib = 2**20
    out = [
        "| case | planned peak MiB | measured peak MiB | ratio | tracked rise MiB | RSS rise MiB "
        "| RSS / tracked | planned GFLOP | measured GFLOP | ratio | plan s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for r in rows:
        rss_ratio = r["rss_rise"] / r["tracked_rise"] if r["tracked_rise"] else float("nan")
        out.append(
            f"| {r['case']} | {r['planned_peak'] / mib:.2f} | {r['measured_peak'] / mib:.2f} "
            f"| {r['planned_peak'] / r['measured_peak']:.3f} | {r['tracked_rise'] / mib:.2f} "
            f"| {r['rss_rise'] / mib:.2f} | {rss_ratio:.2f} | {r['planned_flops'] / 1e9:.3f} "
            f"| {r['measured_flops'] / 1e9:.3f} | {r['planned_flops'] / r['measured_flops']:.3f} "
            f"| {r['plan_seconds']:.1f} |"
        )
    return out


def main(argv: list[str] | None = None) -> list[dict[str, Any]]:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument(
        "--cases", default=DEFAULT_CASES, help="target:model:method[:rung+rung], comma-separated"
    )
    args = ap.parse_args(argv)
    rows = []
    for case in args.cases.split(","):
        target, model, method, *rest = case.strip().split(":")
        rungs = tuple(r for r in (rest[0] if rest else "").split("+") if r)
        rows.append(run_case(target, model, method, rungs))
    for line in table(rows):
        print(line)
    return rows


if __name__ == "__main__":
    main()
