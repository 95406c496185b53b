"""One cell of the bench: one photo protected by one method against one target, then measured.

The cell protects the photo once (:func:`stillguard.protect` with the method's resolved run
configuration), rounds it to the saved 8-bit PNG, and measures it with
:func:`stillguard.measure.evaluate.evaluate` after every attack and for every seed (the attack is
the transform's exact ``real()`` purification; clean and protected videos of a seed share the
noise; the clean videos of a photo are shared by every method through ``clean_videos``). Its result
is a JSON-able dict: per (attack, seed) rows, the photo's fidelity, timings and peak memory.

Choices: time per photo is wall-clock protect + evaluate of the cell (with the shared clean videos
counted in the first method that needs them), and ``cpu_seconds`` the process's CPU time over the
same span (on a shared machine the wall time depends on the load, the CPU time much less); peak memory is the CUDA allocator's peak during the
cell on a GPU, else the process's peak resident memory so far (``ru_maxrss``: it only grows, so it
is an upper bound for the cell and labelled so).
"""

from __future__ import annotations

import resource
import sys
import time
from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor


def _peak_memory(device: str) -> tuple[float, str]:
    if device.startswith("cuda") and torch.cuda.is_available():
        return torch.cuda.max_memory_allocated() / 2**20, "cuda peak allocated"
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return rss / (2**20 if sys.platform == "darwin" else 2**10), "process peak RSS"


def run_cell(
    photo: Any,
    adapter: Any,
    cfg: Any,
    attacks: list[str],
    seeds: list[int],
    *,
    hook: Callable | None,
    clean_videos: dict[int, Tensor],
    lpips: Any = None,
    face_identity: Callable[[Tensor, Tensor], Mapping[str, float]] | None = None,
    gen: Mapping[str, Any] | None = None,
    on_step: Callable[[Any], None] | None = None,
    on_video: Callable[[dict[str, Any]], None] | None = None,
) -> tuple[dict[str, Any], Tensor, dict[str, Tensor]]:
    """Protect, purify, generate, measure. Returns ``(record, protected image, videos)``.

    Shape:
        ``photo.image`` ``(1, 3, H, W)``; videos ``(1, F, 3, h, w)`` (first seed, every attack).
    """
    from ...loop import protect
    from ...measure import metrics
    from ...measure.evaluate import evaluate
    from ...transforms import parse_attack

    if cfg.device.startswith("cuda") and torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    t0, cpu0 = time.perf_counter(), time.process_time()
    needs_model = cfg.method_name != "noise"
    result = protect(photo.image, adapter if needs_model else None, callback=on_step,
                     **cfg.protect_kwargs())  # fmt: skip
    t_protect = time.perf_counter() - t0
    prot = result.image
    transforms = [parse_attack(a) for a in attacks]
    labels = {t.label: a for t, a in zip(transforms, attacks, strict=True)}
    t0 = time.perf_counter()
    report = evaluate(photo.image, prot, adapter, seeds=seeds, transforms=transforms,
                      noise_baseline=False, eps=cfg.loop.eps or 8 / 255, callback=on_video,
                      video_metrics=hook, clean_videos=clean_videos, all_videos=True,
                      **dict(gen or {}))  # fmt: skip
    t_eval = time.perf_counter() - t0
    imp = metrics.imperceptibility(photo.image, prot)
    fidelity = {k: imp[k] for k in ("psnr", "ssim", "linf_255")}
    if lpips is not None:
        with torch.no_grad():
            fidelity["lpips"] = float(lpips(photo.image, prot)[0])
    if face_identity is not None:
        fidelity.update(face_identity(photo.image, prot))
    rows = []
    for r in report.rows:
        row = {"attack": labels[r["transform"]], "seed": r["seed"]}
        row.update({k: float(v) for k, v in r.items()
                    if k not in ("transform", "seed", "subject") and isinstance(v, (int, float))})  # fmt: skip
        rows.append(row)
    peak, peak_kind = _peak_memory(cfg.device)
    record = {
        "photo": photo.name,
        "rows": rows,
        "fidelity": fidelity,
        "protect_seconds": t_protect,
        "eval_seconds": t_eval,
        "seconds": t_protect + t_eval,
        "cpu_seconds": time.process_time() - cpu0,
        "peak_mib": peak,
        "peak_kind": peak_kind,
        "final_loss": float(result.losses[-1]) if result.losses else None,
    }
    videos = {"clean": report.videos["clean"]}
    for t, a in zip(transforms, attacks, strict=True):
        videos[a] = report.videos[f"protected@{t.label}"]
    return record, prot, videos
