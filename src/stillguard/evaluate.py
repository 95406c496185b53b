"""Measure a protection: clean vs protected videos, after each purification, over seeds.

For every seed the clean video is generated once from the **8-bit** original; for every transform
the **8-bit** protected image goes through the transform's exact ``real()`` purification and a video
is generated from it with the same seed (so the same initial noise). A same-budget random-noise
baseline goes through the same path. The clean video is not regenerated per transform: purifying the
original is not what an attacker does, and the question is whether the purified protected image
still animates like the photo would have.

Per video (``stillguard.metrics``): flow (px/frame, Farneback), normalised flow, temporal
dissimilarity (mean 1-SSIM, consecutive and vs frame 0), drift (last vs first frame, 8-bit steps),
fidelity to the **original** image (frame 0 and all frames), and for protected/noise videos their
frame-wise PSNR/SSIM to the clean video. Ratios: ``motion_ratio`` = flow / clean flow,
``dissim_ratio`` = dissimilarity / clean dissimilarity (``nan`` when the clean value is ~0: a
clean video that does not move cannot show freezing), ``fidelity_drop`` = relative drop of the
frame-0 SSIM to the original, ``(clean - protected) / clean``.

Verdict thresholds (our choice; the papers publish none), applied to the means over seeds:

* **frozen**: ``motion_ratio <= 0.25`` and ``dissim_ratio <= 0.25`` (the protected video keeps at
  most a quarter of the clean video's motion and frame-to-frame change);
* **degraded**: otherwise, if ``video_ssim <= 0.5`` (SSIM of the protected video to the clean one)
  or ``fidelity_drop >= 0.5`` (frame 0 lost half of its SSIM to the photo);
* **not protected**: otherwise.

The noise baseline is a uniform draw of integer 8-bit steps in ``[-floor(255 eps), floor(255 eps)]``
(so exactly inside the budget after quantisation) from ``torch.Generator().manual_seed(noise_seed)``;
the same-budget control of I2VGuard-style evaluations. It gets a verdict too: a protection whose
verdict the noise also earns is not shown to work.
"""

from __future__ import annotations

import json
import logging
import math
import os
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor

from stillguard import metrics
from stillguard.errors import InputError
from stillguard.versions import CORE, package_versions

logger = logging.getLogger(__name__)

FROZEN_MOTION_RATIO = 0.25
FROZEN_DISSIM_RATIO = 0.25
DEGRADED_VIDEO_SSIM = 0.5
DEGRADED_FIDELITY_DROP = 0.5
THRESHOLDS = {
    "frozen": f"motion_ratio <= {FROZEN_MOTION_RATIO} and dissim_ratio <= {FROZEN_DISSIM_RATIO}",
    "degraded": f"video_ssim <= {DEGRADED_VIDEO_SSIM} or fidelity_drop >= {DEGRADED_FIDELITY_DROP}",
    "not protected": "otherwise",
}
VERDICTS = ("frozen", "degraded", "not protected")
_TINY = 1e-6
#: metrics of one generated video; the clean video's copies are prefixed ``clean_``.
VIDEO_KEYS = ("flow", "flow_norm", "dissim", "dissim_first", "drift", "psnr_first", "ssim_first",
              "ssim_all")  # fmt: skip
PAIR_KEYS = ("video_psnr", "video_ssim", "motion_ratio", "dissim_ratio", "fidelity_drop")


@dataclass
class Report:
    """What :func:`evaluate` measured.

    Attributes:
        rows: one dict per (transform, seed, subject), subject ``"protected"`` or ``"noise"``.
        summary: one dict per (transform, subject): means over seeds, ``<key>_std`` (population std)
            and ``verdict``.
        verdicts: transform label -> verdict of the protected image.
        videos: clean/protected/noise videos of the first transform (identity by default) and first
            seed, each ``(1, F, 3, H, W)``, for the visual report (not serialised).
        images: the 8-bit ``original``, ``protected`` and ``noise`` images ``(1, 3, H, W)``.
        imperceptibility: ``"protected"`` and ``"noise"`` -> :func:`metrics.imperceptibility`.
        config: target description, seeds, transforms, eps, thresholds, versions.
    """

    rows: list[dict[str, Any]]
    summary: list[dict[str, Any]]
    verdicts: dict[str, str]
    videos: dict[str, Tensor] = field(default_factory=dict, repr=False)
    images: dict[str, Tensor] = field(default_factory=dict, repr=False)
    imperceptibility: dict[str, dict[str, Any]] = field(default_factory=dict)
    config: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able content (non-finite numbers become ``None``: JSON has no inf/nan)."""
        keys = ("rows", "summary", "verdicts", "imperceptibility", "config")
        return _jsonable({k: getattr(self, k) for k in keys})

    def to_json(self, indent: int = 1) -> str:
        return json.dumps(self.to_dict(), indent=indent, allow_nan=False)

    def table(self) -> str:
        """Human-readable summary: imperceptibility, one line per transform and subject, thresholds."""
        from stillguard.report import text_table

        return text_table(self)

    def save(self, out_dir: str | os.PathLike[str]) -> Path:
        """Write ``report.json`` and ``table.txt`` into ``out_dir``; return the JSON path."""
        out = Path(out_dir)
        out.mkdir(parents=True, exist_ok=True)
        (out / "table.txt").write_text(self.table() + "\n")
        path = out / "report.json"
        path.write_text(self.to_json() + "\n")
        return path


def _jsonable(x: Any) -> Any:
    if isinstance(x, dict):
        return {str(k): _jsonable(v) for k, v in x.items()}
    if isinstance(x, (list, tuple)):
        return [_jsonable(v) for v in x]
    if isinstance(x, (float, np.floating)):
        return float(x) if math.isfinite(x) else None
    if isinstance(x, np.integer):
        return int(x)
    if isinstance(x, (str, int, bool)) or x is None:
        return x
    return str(x)


def verdict(row: dict[str, Any]) -> str:
    """``"frozen"``, ``"degraded"`` or ``"not protected"`` for a summary (or single) row.

    See the module docstring (and :data:`THRESHOLDS`) for the rule; ``nan``/missing values never
    satisfy a threshold.
    """

    def ok(key: str, test: Callable[[float], bool]) -> bool:
        v = row.get(key)
        return v is not None and not math.isnan(float(v)) and test(float(v))

    if ok("motion_ratio", lambda v: v <= FROZEN_MOTION_RATIO) and ok(
        "dissim_ratio", lambda v: v <= FROZEN_DISSIM_RATIO
    ):
        return "frozen"
    if ok("video_ssim", lambda v: v <= DEGRADED_VIDEO_SSIM) or ok(
        "fidelity_drop", lambda v: v >= DEGRADED_FIDELITY_DROP
    ):
        return "degraded"
    return "not protected"


# ----------------------------------------------------------------------------------- helpers
def quantize8(x: Tensor) -> Tensor:
    """Round to the nearest 8-bit level. Shape: any -> same."""
    return (x.detach().float().clamp(0, 1) * 255).round() / 255


def _load(x: Any, what: str) -> Tensor:
    """Tensor, image path, or an object with ``.image`` (Protected) -> (1,3,H,W) float in [0,1]."""
    if isinstance(x, (str, os.PathLike)):
        from stillguard.io import load_image

        x = load_image(x).tensor
    elif hasattr(x, "image") and torch.is_tensor(x.image):
        x = x.image
    if not torch.is_tensor(x):
        raise InputError(f"{what} must be a tensor, an image path or a Protected, got {type(x)}")
    if x.ndim == 3:
        x = x.unsqueeze(0)
    if x.ndim != 4 or x.shape[:2] != (1, 3):
        raise InputError(f"{what} must have shape (1, 3, H, W), got {tuple(x.shape)}")
    metrics._check_range(x, what)
    return quantize8(x.cpu())


def noise_image(original: Tensor, eps: float, seed: int = 0) -> Tensor:
    """The same-budget random-noise baseline (see the module docstring).

    Shape:
        ``(1, 3, H, W)`` -> ``(1, 3, H, W)``, 8-bit valued.
    """
    steps = math.floor(eps * 255 + 1e-6)
    g = torch.Generator().manual_seed(seed)
    noise = torch.randint(-steps, steps + 1, original.shape, generator=g).float() / 255
    return quantize8(original + noise)


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
    from stillguard.transforms import parse_transform

    return parse_transform(spec)


def _video_metrics(video: Tensor, original: Tensor) -> dict[str, float]:
    fid = metrics.image_fidelity(video, original)
    flow = float(metrics.per_frame_flow(video).mean())
    return {
        "flow": flow,
        "flow_norm": flow / math.hypot(*video.shape[-2:]),
        "dissim": metrics.temporal_dissimilarity(video),
        "dissim_first": metrics.temporal_dissimilarity(video, ref="first"),
        "drift": metrics.drift(video),
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


def summarize(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Group rows by (transform, subject), in first-seen order: mean and std over seeds + verdict."""
    groups: dict[tuple[str, str], list[dict[str, Any]]] = {}
    for r in rows:
        groups.setdefault((r["transform"], r["subject"]), []).append(r)
    out = []
    for (transform, subject), rs in groups.items():
        s: dict[str, Any] = {"transform": transform, "subject": subject, "seeds": len(rs)}
        for k in rs[0]:
            if k in ("transform", "subject", "seed"):
                continue
            vals = np.array([r[k] for r in rs], dtype=np.float64)
            with np.errstate(invalid="ignore"):
                s[k] = float(vals.mean())
                s[k + "_std"] = float(vals.std()) if np.isfinite(vals).all() else math.nan
        s["verdict"] = verdict(s)
        out.append(s)
    return out


# ---------------------------------------------------------------------------------- evaluate
def evaluate(
    adapter: Any,
    original: Any,
    protected: Any,
    *,
    seeds: Sequence[int] = (0, 1),
    transforms: Sequence[Any] | None = None,
    noise_baseline: bool = True,
    eps: float = 8 / 255,
    noise_seed: int = 0,
    num_frames: int | None = None,
    num_inference_steps: int | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
) -> Report:
    """Generate clean, protected and noise-baseline videos and measure them.

    Args:
        adapter: the target model (:class:`~stillguard.adapters.base.Adapter`).
        original: the photo: tensor in [0, 1], an image path, or a ``Protected`` (its ``.image``
            is used, so pass ``result.original`` for the original).
        protected: the protected image, same forms and same size as ``original``.
        seeds: generation seeds; each gives the clean and the protected video the same noise.
        transforms: spec strings (``"jpeg:75"``) or objects with ``.real(x)`` and ``.label``;
            default ``("identity", *DEFAULT_PURIFICATIONS)``.
        noise_baseline: also evaluate the same-budget random-noise image.
        eps: L-infinity budget of the noise baseline, in [0, 1] units.
        noise_seed: seed of the noise baseline.
        num_frames, num_inference_steps: passed to ``adapter.generate`` (``None``: its defaults).
        callback: called with ``{"done", "total", "seed", "transform", "subject"}`` after each video.
    Returns:
        A :class:`Report`.
    Shape:
        images ``(1, 3, H, W)`` (or ``(3, H, W)``); videos from the adapter ``(1, F, 3, h, w)``.
    """
    if transforms is None:
        from stillguard.transforms import DEFAULT_PURIFICATIONS

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
    total, done = len(seeds) * (1 + len(tfs) * len(subjects)), 0
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

    for si, seed in enumerate(seeds):
        clean = gen(orig, seed, "-", "clean")
        c = _video_metrics(clean, orig)
        for ti, (tf, label) in enumerate(zip(tfs, labels, strict=True)):
            for subject, img in subjects.items():
                purified = quantize8(tf.real(img))
                video = gen(purified, seed, label, subject)
                m = _video_metrics(video, orig)
                row: dict[str, Any] = {"transform": label, "seed": seed, "subject": subject}
                row.update(m)
                row.update({f"clean_{k}": v for k, v in c.items()})
                row.update(_pair_metrics(video, clean, m, c))
                rows.append(row)
                if si == 0 and ti == 0:
                    videos["clean"], videos[subject] = clean, video
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
        "flow": {"method": "farneback", **metrics.FARNEBACK},
        "fidelity_reference": "original image, 8-bit",
        "versions": package_versions((*CORE, "opencv-python-headless")),
    }
    for label, v in verdicts.items():
        logger.info("%s: %s", label, v)
    return Report(rows, summary, verdicts, videos, {"original": orig, **subjects}, imp, config)


def verify(adapter: Any, original: Any, protected: Any, **kwargs: Any) -> Report:
    """:func:`evaluate`, also accepting an adapter name (loaded with ``model="tiny"`` unless a
    ``model=`` keyword is given).
    """
    if isinstance(adapter, str):
        from stillguard.adapters import load_adapter

        adapter = load_adapter(adapter, model=kwargs.pop("model", "tiny"))
    return evaluate(adapter, original, protected, **kwargs)
