"""Measure a protection: clean vs protected videos, after each purification, over seeds.

For every seed the clean video is generated once from the **8-bit** original; for every transform
the **8-bit** protected image goes through the transform's exact ``real()`` purification and a video
is generated from it with the same seed (so the same initial noise). A same-budget random-noise
baseline goes through the same path. The clean video is not regenerated per transform: purifying the
original is not what an attacker does, and the question is whether the purified protected image
still animates like the photo would have.

Per video (``stillguard.measure.metrics``): flow (px/frame, Farneback), normalised flow, temporal
dissimilarity (mean 1-SSIM, consecutive and vs frame 0), drift (last vs first frame, 8-bit steps),
fidelity to the **original** image (frame 0 and all frames), and for protected/noise videos their
frame-wise PSNR/SSIM to the clean video. Ratios: ``motion_ratio`` = flow / clean flow,
``dissim_ratio`` = dissimilarity / clean dissimilarity (``nan`` when the clean value is ~0: a
clean video that does not move cannot show freezing), ``fidelity_drop`` = relative drop of the
frame-0 SSIM to the original, ``(clean - protected) / clean``.

Verdicts and their thresholds: :mod:`stillguard.measure.verdict`.

The noise baseline is the ``noise`` method run through the one loop (uniform in the budget, rounded
to 8 bits, seed ``noise_seed``): the same-budget control of I2VGuard-style evaluations. It gets a verdict too: a protection whose
verdict the noise also earns is not shown to work.
"""

from __future__ import annotations

import logging
import math
import os
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor

from ..errors import InputError
from ..tensors import check_range, quantize8
from ..versions import CORE, package_versions
from . import metrics, motion
from .result import Report
from .verdict import THRESHOLDS, summarize

logger = logging.getLogger(__name__)

_TINY = 1e-6
#: metrics of one generated video; the clean video's copies are prefixed ``clean_``.
VIDEO_KEYS = ("flow", "flow_norm", "dissim", "dissim_first", "drift", "psnr_first", "ssim_first",
              "ssim_all")  # fmt: skip
PAIR_KEYS = ("video_psnr", "video_ssim", "motion_ratio", "dissim_ratio", "fidelity_drop")


# ----------------------------------------------------------------------------------- helpers
def _load(x: Any, what: str) -> Tensor:
    """Tensor, image path, or an object with ``.image`` (Protected) -> (1,3,H,W) float in [0,1]."""
    if isinstance(x, (str, os.PathLike)):
        from ..images import load_image

        x = load_image(x).tensor
    elif hasattr(x, "image") and torch.is_tensor(x.image):
        x = x.image
    if not torch.is_tensor(x):
        raise InputError(f"{what} must be a tensor, an image path or a Protected, got {type(x)}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise InputError(f"{what} must have shape (1, 3, H, W), got {tuple(x.shape)}")
    check_range(x, what)
    return quantize8(x.cpu())


def noise_image(original: Tensor, eps: float, seed: int = 0) -> Tensor:
    """The same-budget random-noise baseline: the ``noise`` method through the one loop.

    Shape:
        ``(1, 3, H, W)`` -> ``(1, 3, H, W)``, 8-bit valued.
    """
    from ..loop import protect

    return protect(original, None, "noise", eps=eps, seed=seed).image


class _Identity:
    label = "identity"

    def real(self, x: Tensor) -> Tensor:
        return x


def _transform(spec: Any) -> Any:
    if not isinstance(spec, str):
        if not hasattr(spec, "real"):
            raise InputError(f"a transform needs a .real(x) method, got {type(spec).__name__}")
        return spec
    if spec == "identity":
        return _Identity()
    from ..transforms import parse_transform

    return parse_transform(spec)


def _video_metrics(video: Tensor, original: Tensor) -> dict[str, float]:
    fid = metrics.image_fidelity(video, original)
    flow = float(motion.per_frame_flow(video).mean())
    return {
        "flow": flow,
        "flow_norm": flow / math.hypot(*video.shape[-2:]),
        "dissim": motion.temporal_dissimilarity(video),
        "dissim_first": motion.temporal_dissimilarity(video, ref="first"),
        "drift": motion.drift(video),
        "psnr_first": fid["psnr_first"],
        "ssim_first": fid["ssim_first"],
        "ssim_all": fid["ssim_all"],
    }


def _ratio(a: float, b: float) -> float:
    return a / b if b > _TINY else math.nan


def _pair_metrics(video: Tensor, clean: Tensor, m: dict, c: dict) -> dict[str, float]:
    vf = metrics.video_fidelity(video, clean)
    c0 = c["ssim_first"]
    return {
        "video_psnr": vf["psnr_mean"],
        "video_ssim": vf["ssim_mean"],
        "motion_ratio": _ratio(m["flow"], c["flow"]),
        "dissim_ratio": _ratio(m["dissim"], c["dissim"]),
        "fidelity_drop": (c0 - m["ssim_first"]) / c0 if c0 > _TINY else math.nan,
    }


# ---------------------------------------------------------------------------------- evaluate
def evaluate(
    original: Any,
    protected: Any,
    adapter: Any,
    *,
    seeds: Sequence[int] = (0, 1),
    transforms: Sequence[Any] | None = None,
    noise_baseline: bool = True,
    eps: float = 8 / 255,
    noise_seed: int = 0,
    num_frames: int | None = None,
    num_inference_steps: int | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    video_metrics: Callable[[Tensor, Tensor, str], dict[str, float]] | None = None,
    clean_videos: dict[int, Tensor] | None = None,
    all_videos: bool = False,
) -> Report:
    """Generate clean, protected and noise-baseline videos and measure them.

    Args:
        original: the photo: tensor in [0, 1], an image path, or a ``Protected`` (its ``.image``
            is used, so pass ``result.original`` for the original).
        protected: the protected image, same forms and same size as ``original``.
        adapter: the target model (:class:`~stillguard.adapters.base.Adapter`).
        seeds: generation seeds; each gives the clean and the protected video the same noise.
        transforms: spec strings (``"jpeg:75"``) or objects with ``.real(x)`` and ``.label``;
            default ``("identity", *DEFAULT_PURIFICATIONS)``.
        noise_baseline: also evaluate the same-budget random-noise image.
        eps: L-infinity budget of the noise baseline, in [0, 1] units.
        noise_seed: seed of the noise baseline.
        num_frames, num_inference_steps: passed to ``adapter.generate`` (``None``: its defaults).
        callback: called with ``{"done", "total", "seed", "transform", "subject"}`` after each video.
        video_metrics: more numbers per video, ``fn(video, clean_video, subject) -> {name: float}``
            (subject ``"clean"``, ``"protected"`` or ``"noise"``; the clean video of the same seed
            is passed too, itself for the clean one); added to each row, the clean video's as
            ``clean_<name>`` (e.g. the face metrics of :mod:`stillguard.measure.faces`).
        clean_videos: a cache ``{seed: clean video}`` for this original and adapter, read and
            filled, so several protections of one photo share its clean videos.
        all_videos: keep the first seed's video of every transform too, as
            ``videos["<subject>@<transform>"]`` (memory grows with the transforms).
    Returns:
        A :class:`Report`.
    Shape:
        images ``(1, 3, H, W)`` (or ``(3, H, W)``); videos from the adapter ``(1, F, 3, h, w)``.
    """
    if transforms is None:
        from ..transforms import DEFAULT_PURIFICATIONS

        transforms = ("identity", *DEFAULT_PURIFICATIONS)
    seeds = [int(s) for s in seeds]
    if not seeds or not transforms:
        raise InputError("evaluate needs at least one seed and one transform")
    orig = _load(original, "original")
    prot = _load(protected, "protected")
    if orig.shape != prot.shape:
        raise InputError(
            f"original {tuple(orig.shape)} and protected {tuple(prot.shape)} differ in size; "
            "pass the original the protected image was made from"
        )
    tfs = [_transform(t) for t in transforms]
    labels = [str(getattr(t, "label", t)) for t in tfs]
    subjects = {"protected": prot}
    if noise_baseline:
        subjects["noise"] = noise_image(orig, eps, noise_seed)
    imp = {k: metrics.imperceptibility(orig, v) for k, v in subjects.items()}
    if imp["protected"]["linf_255"] > eps * 255 + 0.5:
        logger.warning(
            "the protected image differs from the original by %.0f/255, over eps=%.1f/255",
            imp["protected"]["linf_255"],
            eps * 255,
        )
    gen_kw = {"num_frames": num_frames, "num_inference_steps": num_inference_steps}
    cache = clean_videos if clean_videos is not None else {}
    fresh = sum(s not in cache for s in seeds)
    total, done = fresh + len(seeds) * len(tfs) * len(subjects), 0
    rows: list[dict[str, Any]] = []
    videos: dict[str, Tensor] = {}

    def gen(x: Tensor, seed: int, label: str, subject: str) -> Tensor:
        nonlocal done
        with torch.no_grad():
            v = adapter.generate(x, seed=seed, **gen_kw).detach().float().cpu().clamp(0, 1)
        done += 1
        logger.debug("video %d/%d: seed %d, %s, %s", done, total, seed, label, subject)
        if callback is not None:
            callback(
                {"done": done, "total": total, "seed": seed, "transform": label, "subject": subject}
            )
        return v

    def more(video: Tensor, clean: Tensor, subject: str) -> dict[str, float]:
        return dict(video_metrics(video, clean, subject)) if video_metrics is not None else {}

    for si, seed in enumerate(seeds):
        if seed not in cache:
            cache[seed] = gen(orig, seed, "-", "clean")
        clean = cache[seed]
        c = {**_video_metrics(clean, orig), **more(clean, clean, "clean")}
        for ti, (tf, label) in enumerate(zip(tfs, labels, strict=True)):
            for subject, img in subjects.items():
                purified = quantize8(tf.real(img))
                video = gen(purified, seed, label, subject)
                m = {**_video_metrics(video, orig), **more(video, clean, subject)}
                row: dict[str, Any] = {"transform": label, "seed": seed, "subject": subject}
                row.update(m)
                row.update({f"clean_{k}": v for k, v in c.items()})
                row.update(_pair_metrics(video, clean, m, c))
                rows.append(row)
                if si == 0 and ti == 0:
                    videos["clean"], videos[subject] = clean, video
                if si == 0 and all_videos:
                    videos[f"{subject}@{label}"] = video
    summary = summarize(rows)
    verdicts = {s["transform"]: s["verdict"] for s in summary if s["subject"] == "protected"}
    describe = adapter.describe() if hasattr(adapter, "describe") else {"target": str(adapter)}
    config = {
        "target": describe,
        "real_model": bool(getattr(adapter, "is_real", False)),
        "seeds": seeds,
        "transforms": labels,
        "video_transform": labels[0],
        "eps": eps,
        "eps_255": eps * 255,
        "noise_baseline": noise_baseline,
        "noise_seed": noise_seed,
        "num_frames": num_frames,
        "num_inference_steps": num_inference_steps,
        "thresholds": THRESHOLDS,
        "flow": {"method": "farneback", **motion.FARNEBACK},
        "fidelity_reference": "original image, 8-bit",
        "versions": package_versions((*CORE, "opencv-python-headless")),
    }
    for label, v in verdicts.items():
        logger.info("%s: %s", label, v)
    return Report(rows, summary, verdicts, videos, {"original": orig, **subjects}, imp, config)
