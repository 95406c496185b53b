"""Planned memory and time of every shipped real target, with and without the memory ladder.

    python benchmarks/plan_table.py [--out docs/] [--gpu H100] [--gpu-memory 80GB] [--targets a,b]
                                    [--merge]

For each target's default checkpoint (its shipped configuration, no weights) and the default
preset (Vid-Freeze, exact attention, 100 PGD steps; bf16), :func:`stillguard.plan.plan` sizes one
protection step on fake tensors: the peak memory of the step as it stands, then the rungs the
memory ladder (:func:`stillguard.plan.choose_rungs`) needs to fit ``--gpu-memory``, that plan's
peak and its estimated time per image on ``--gpu``. Every number is **planned**, not measured on a
GPU (none was available); the time assumes the sustained throughput listed in
``stillguard/plan/gpus.py``. Writes ``plans.md`` and ``plans.json`` after every target (a run
cut short keeps the rows it finished); ``--merge`` keeps the rows already in ``--out`` for the
targets not re-planned (each row records the date it was planned), so ``--targets`` can add or
refresh a few rows of a full table.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path


def _row(target: str, gpu: str, memory: str) -> dict:
    from stillguard.plan import LadderError, choose_rungs, plan
    from stillguard.plan.gpus import human_bytes

    t0 = time.perf_counter()
    row: dict = {"target": target}
    try:
        base = plan(target, gpu=gpu, gpu_memory=memory)
        row.update(params=base.params, weight_bytes=base.weight_bytes, peak=base.peak_bytes,
                   need=base.need_bytes, fits=base.fits, seconds_per_image=base.seconds_per_image)  # fmt: skip
        try:
            rungs, fit = choose_rungs(target, gpu=gpu, gpu_memory=memory)
            row.update(rungs=rungs, ladder_peak=fit.peak_bytes, ladder_need=fit.need_bytes,
                       ladder_seconds_per_image=fit.seconds_per_image,
                       skipped=fit.skipped_rungs, attention=fit.attention)  # fmt: skip
        except LadderError as err:
            row.update(rungs=None, ladder_error=" ".join(str(err).split()))
    except Exception as err:  # noqa: BLE001 - a target the planner cannot size is reported
        row["error"] = f"{type(err).__name__}: {' '.join(str(err).split())[:300]}"
    row["plan_seconds"] = round(time.perf_counter() - t0, 1)
    row["date"] = time.strftime("%Y-%m-%d")
    print(target, {k: (human_bytes(v) if k in ("peak", "ladder_peak") and v else v)
                   for k, v in row.items() if k != "skipped"}, flush=True)  # fmt: skip
    return row


def _md(rows: list[dict], gpu: str, memory: str, argv: list[str]) -> str:
    from stillguard.plan.gpus import human_bytes

    def t(s: float | None) -> str:
        return "n/a" if s is None else (f"{s / 60:.1f} min" if s >= 120 else f"{s:.0f} s")

    out = [
        "# Planned memory and time per image (no GPU measurement)",
        "",
        f"Command: `python benchmarks/plan_table.py {' '.join(argv)}` (rows planned "
        f"{', '.join(sorted({r.get('date', 'earlier') for r in rows}))}).",
        f"Default checkpoint of each target, default preset (vid-freeze, exact attention, 100 PGD "
        f"steps), bf16, planned on fake tensors; the ladder fits {memory}; times on {gpu} are "
        "estimates from an assumed sustained throughput (`stillguard/plan/gpus.py`).",
        "",
        f"| target | parameters | peak as is | ladder rungs for {memory} | peak with ladder | "
        f"time per image ({gpu}) | attention optimised |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "error" in r:
            out.append(f"| {r['target']} | not planned: {r['error'][:120]} | | | | | |")
            continue
        rungs = ", ".join(r["rungs"]) if r.get("rungs") is not None else "does not fit"
        peak_l = human_bytes(r["ladder_peak"]) if r.get("ladder_peak") else "n/a"
        out.append(
            f"| {r['target']} | {r['params'] / 1e9:.2f} B | {human_bytes(r['peak'])} | {rungs} | "
            f"{peak_l} | {t(r.get('ladder_seconds_per_image'))} | "
            f"{(r.get('attention') or 'n/a').split(' (')[0]} |"
        )
    out += ["", "The ladder tries exact-row sampling (`sampled-attention=N`: N exact query rows per "
            "map, halving N) before frame-pooled attention; how close each estimate's gradient is "
            "to the exact maps': [`attention-estimates.md`](attention-estimates.md).", "",
            "Why gradient checkpointing saves what it saves, and what fills memory after it: "
            "[`checkpointing.md`](checkpointing.md)."]  # fmt: skip
    return "\n".join(out) + "\n"


def main(argv: list[str] | None = None) -> list[dict]:
    argv = sys.argv[1:] if argv is None else argv
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", type=Path, default=Path("docs"))
    ap.add_argument("--gpu", default="H100")
    ap.add_argument("--gpu-memory", default="80GB")
    ap.add_argument("--targets", default=None, help="comma-separated (default: every target)")
    ap.add_argument("--merge", action="store_true", help="keep --out's rows of other targets")
    args = ap.parse_args(argv)
    from stillguard.plugins import ADAPTERS

    targets = args.targets.split(",") if args.targets else ADAPTERS.names()
    order = {name: i for i, name in enumerate(ADAPTERS.names())}
    old = args.out / "plans.json"
    kept = json.loads(old.read_text()) if args.merge and old.is_file() else []
    done = {r["target"]: r for r in kept if r["target"] not in targets}
    args.out.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = list(done.values())
    for target in targets:
        done[target] = _row(target, args.gpu, args.gpu_memory)
        rows = sorted(done.values(), key=lambda r: order.get(r["target"], len(order)))
        (args.out / "plans.json").write_text(json.dumps(rows, indent=1, default=str) + "\n")
        (args.out / "plans.md").write_text(_md(rows, args.gpu, args.gpu_memory, argv))
    return rows


if __name__ == "__main__":
    main()
