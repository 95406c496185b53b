"""Images per minute on Ray with 1 and 2 CPU actors (tiny and toy models), and the overhead of the
Ray path against the plain batch runner with one worker.

    PYTHONPATH=src OMP_NUM_THREADS=1 .venv/bin/python benchmarks/ray_throughput.py [--images 24] [--steps 4]

One local Ray runtime (127.0.0.1, no dashboard, ``num_cpus=2``) for the whole run. For each model
and number of actors, one ``run_ray_batch`` on a fresh output folder of ``--images`` random
96x64 photos. Two rates are printed:

* *steady*: images / (last result - first job sent): actors already hold the model;
* *wall*: images / the whole call, with actor start-up and model loading (what a user waits).

The overhead ratio compares the Ray path with one actor against ``run_batch`` in this process
(the same model and images, one torch thread each), both *steady* (the model loaded): the seconds
per image on Ray divided by the seconds per image without it; one run, no repeats.
"""

from __future__ import annotations

import argparse
import logging
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # a runtime on 127.0.0.1 only

import numpy as np  # noqa: E402
import ray  # noqa: E402
import torch  # noqa: E402
from PIL import Image  # noqa: E402

from stillguard.adapters import load_adapter  # noqa: E402
from stillguard.app.config import build_config  # noqa: E402
from stillguard.app.run import run_batch, run_ray_batch  # noqa: E402


def photos(folder: Path, n: int) -> Path:
    folder.mkdir(parents=True)
    for i in range(n):
        arr = np.random.default_rng(i).integers(0, 256, (64, 96, 3), dtype=np.uint8)
        Image.fromarray(arr).save(folder / f"p{i:02d}.png")
    return folder


class Clock:
    """Batch-event callback: time of the first job sent (or started) and of the last result."""

    def __init__(self) -> None:
        self.first: float | None = None
        self.last = 0.0

    def __call__(self, ev) -> None:
        if ev.kind == "start" and self.first is None:
            self.first = time.perf_counter()
        if ev.kind == "done":
            self.last = time.perf_counter()

    @property
    def seconds(self) -> float:
        return self.last - (self.first or self.last)


class Echo:
    def echo(self, jobs: list) -> list:
        return jobs


def job_round_trip_ms(ray, calls: int = 50) -> float:
    """Median milliseconds of one actor call carrying one job and returning it (Ray's own cost)."""
    actor = ray.remote(Echo).options(num_cpus=1).remote()
    job = [(0, "/in/p00.png", "/out/p00.protected.png", "/out/p00.protected.json")]
    ray.get(actor.echo.remote(job))
    times = []
    for _ in range(calls):
        t0 = time.perf_counter()
        ray.get(actor.echo.remote(job))
        times.append(time.perf_counter() - t0)
    ray.kill(actor)
    return 1000 * sorted(times)[calls // 2]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", type=int, default=24)
    ap.add_argument("--steps", type=int, default=4)
    ap.add_argument("--models", default="tiny,toy")
    args = ap.parse_args()
    torch.set_num_threads(1)
    logging.getLogger("stillguard").setLevel(logging.ERROR)  # the per-image toy-model warning
    load_before = os.getloadavg()[0]
    ray.init(address="local", num_cpus=2, include_dashboard=False, log_to_driver=False,
             logging_level=logging.WARNING, object_store_memory=100 * 2**20)  # fmt: skip
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        src = photos(Path(tmp) / "in", args.images)
        for model in args.models.split(","):
            cfg = build_config("debug", model=model, steps=args.steps)
            per_image = {}
            for workers in (1, 2):
                clock = Clock()
                t0 = time.perf_counter()
                res = run_ray_batch([src], Path(tmp) / f"{model}-{workers}", cfg,
                                    num_workers=workers, callback=clock)  # fmt: skip
                wall = time.perf_counter() - t0
                assert res.count("ok") == args.images, res.to_dict()
                per_image[workers] = clock.seconds / args.images
                rows.append((model, f"ray x{workers}", 60 / per_image[workers],
                             60 * args.images / wall, ""))  # fmt: skip
            adapter = load_adapter(cfg.target_name, **cfg.adapter_kwargs())
            clock = Clock()
            res = run_batch([src], Path(tmp) / f"{model}-plain", cfg, adapter, callback=clock)
            assert res.count("ok") == args.images
            plain = clock.seconds / args.images
            rows.append((model, "plain x1", 60 / plain, float("nan"),
                         f"ray x1 / plain = {per_image[1] / plain:.2f}"))  # fmt: skip
    round_trip = job_round_trip_ms(ray)
    ray.shutdown()
    print(
        f"{args.images} images 96x64, {args.steps} steps, Ray num_cpus=2, 1 torch thread per "
        f"worker; load average {load_before:.1f} before, {os.getloadavg()[0]:.1f} after"
    )
    print(f"Ray's own cost per job (an empty actor call, median of 50): {round_trip:.1f} ms")
    print(f"{'model':6} {'runner':9} {'img/min steady':>15} {'img/min wall':>13}  overhead")
    for model, runner, steady, wall, note in rows:
        wall_s = "-" if wall != wall else f"{wall:.1f}"
        print(f"{model:6} {runner:9} {steady:15.1f} {wall_s:>13}  {note}")


if __name__ == "__main__":
    main()
