"""Measured quality of the toy model: does it animate, and does it keep frame 0?

Used by ``benchmarks/toy_quality.py`` and ``tests/test_toy.py``. Inputs come in two kinds:

* **held-out synthetic scenes**: frame 0 of videos from the held-out seed stream
  (``STREAM_HELDOUT``), never drawn during training; their true videos give a ground truth;
* **natural photos** never seen in training: scikit-image's sample photos (bundled with it, so
  offline). Their reference is the training camera move applied to the photo
  (:func:`stillguard.toy.training.data.camera_video`), i.e. the motion the training data implies.

Motion and fidelity numbers come from :mod:`stillguard.measure.metrics` (Farneback flow magnitude,
``1 - SSIM`` between consecutive frames, PSNR of frame 0 to the input). The direction check
(cosine between mean flow vectors over moving pixels, > 0.5 px/frame) is local to this module.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import Tensor

from stillguard.measure import metrics, motion
from stillguard.toy.training.data import (
    STREAM_HELDOUT,
    STREAM_LATENTS,
    SceneConfig,
    camera_video,
    make_video,
)
from stillguard.toy.training.data import scene_rng as _rng

#: scikit-image sample photos used as unseen natural inputs
PHOTOS = ("astronaut", "chelsea", "coffee", "rocket", "immunohistochemistry")


def u8_to_tensor(frames: np.ndarray) -> Tensor:
    """uint8 ``(..., H, W, 3)`` -> float ``(..., 3, H, W)`` in [0, 1]."""
    t = torch.from_numpy(np.array(frames, copy=True)).float().div(255)
    return t.movedim(-1, -3)


def photo(name: str, size: int) -> np.ndarray:
    """A scikit-image sample photo, centre-cropped to a square and resized (Lanczos).

    Shape:
        uint8 ``(size, size, 3)``.
    """
    from PIL import Image
    from skimage import data

    a = getattr(data, name)()
    a = np.stack([a] * 3, -1) if a.ndim == 2 else a[..., :3]
    h, w = a.shape[:2]
    s = min(h, w)
    a = a[(h - s) // 2 : (h - s) // 2 + s, (w - s) // 2 : (w - s) // 2 + s]
    return np.asarray(Image.fromarray(a).resize((size, size), Image.Resampling.LANCZOS))


def photo_case(name: str, cfg: SceneConfig | None = None) -> tuple[Tensor, Tensor]:
    """A natural-photo input and its camera-only reference video.

    Shape:
        image ``(1, 3, H, W)``; reference ``(1, F, 3, H, W)``; both in [0, 1].
    """
    cfg = cfg or SceneConfig()
    canvas = photo(name, cfg.width + 2 * cfg.margin)
    ref = camera_video(canvas, cfg)
    return u8_to_tensor(ref[:1]), u8_to_tensor(ref)[None]


def synthetic_case(seed: int, index: int, cfg: SceneConfig | None = None) -> tuple[Tensor, Tensor]:
    """A held-out synthetic input (frame 0) and its true video.

    Shape:
        image ``(1, 3, H, W)``; video ``(1, F, 3, H, W)``; both in [0, 1].
    """
    v = u8_to_tensor(make_video(_rng(seed, STREAM_HELDOUT, index), cfg))[None]
    return v[:, 0], v


def training_stats(seed: int = 0, n: int = 32) -> dict[str, float]:
    """Motion statistics of the first ``n`` videos of the training latent set."""
    v = torch.stack([u8_to_tensor(make_video(_rng(seed, STREAM_LATENTS, i))) for i in range(n)])
    return {
        "flow": motion.flow_magnitude(v),
        "temporal_dissimilarity": motion.temporal_dissimilarity(v),
        "drift": motion.drift(v),
    }


def flow_vector(video: Tensor, thresh: float = 0.5) -> np.ndarray:
    """Mean flow vector ``(dx, dy)`` over pixels moving faster than ``thresh`` px/frame.

    Shape:
        ``(F, 3, H, W)`` in [0, 1] -> ``(2,)``.
    """
    import cv2

    u8 = (video.clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1).numpy()
    g = [cv2.cvtColor(np.ascontiguousarray(f), cv2.COLOR_RGB2GRAY) for f in u8]
    out = []
    for a, b in zip(g[:-1], g[1:], strict=False):
        fl = cv2.calcOpticalFlowFarneback(a, b, None, flags=0, **motion.FARNEBACK)
        m = np.linalg.norm(fl, axis=-1) > thresh
        out.append(fl[m].mean(0) if m.any() else np.zeros(2))
    return np.mean(out, 0)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-8))


def video_stats(video: Tensor, image: Tensor, reference: Tensor | None = None) -> dict[str, float]:
    """Motion of one generated video, its fidelity to the input, and agreement with a reference.

    Shape:
        video ``(1, F, 3, H, W)``, image ``(1, 3, H, W)``, reference like ``video``.
    """
    out = {
        "flow": motion.flow_magnitude(video),
        "temporal_dissimilarity": motion.temporal_dissimilarity(video),
        "drift": motion.drift(video),
        "psnr_first": min(metrics.image_fidelity(video, image)["psnr_first"], 99.0),
    }
    if reference is not None:
        out["flow_reference"] = motion.flow_magnitude(reference)
        out["temporal_dissimilarity_reference"] = motion.temporal_dissimilarity(reference)
        out["direction_cosine"] = cosine(flow_vector(video[0]), flow_vector(reference[0]))
    return out


def animation_failures(
    stats: dict[str, float],
    train: dict[str, float],
    *,
    min_flow_ratio: float = 0.25,
    min_tdis_ratio: float = 0.1,
    max_tdis_ratio: float = 2.0,
    min_psnr_first: float = 15.0,
) -> list[str]:
    """Reasons why a video does not look like an animation of its input (empty list: it does).

    A frozen video fails the motion checks; flickering noise fails the upper ``1 - SSIM`` bound
    (consecutive frames far less alike than in any training video); pure noise or an unrelated
    video fails frame-0 PSNR.
    The ratios are loose on purpose: the toy model's frames are blurred by its small VAE, which
    lowers ``1 - SSIM`` and flow against the sharp training videos; a frozen video scores 0 on both.
    The PSNR floor (15 dB) sits below the VAE's own reconstruction of detailed photos (about
    19 dB for the astronaut) and above noise (8-11 dB) and an untrained denoiser (about 13 dB);
    compare with :func:`vae_ceiling` for how well frame 0 can be kept at all.
    """
    fails = []
    if stats["flow"] < min_flow_ratio * train["flow"]:
        fails.append(f"flow {stats['flow']:.3f} < {min_flow_ratio} x training {train['flow']:.3f}")
    tdis, t_ref = stats["temporal_dissimilarity"], train["temporal_dissimilarity"]
    if tdis < min_tdis_ratio * t_ref:
        fails.append(f"1-SSIM {tdis:.4f} < {min_tdis_ratio} x training {t_ref:.4f}")
    if tdis > max_tdis_ratio * t_ref:
        fails.append(f"1-SSIM {tdis:.4f} > {max_tdis_ratio} x training {t_ref:.4f} (flicker)")
    if not stats["psnr_first"] >= min_psnr_first:
        fails.append(f"frame-0 PSNR {stats['psnr_first']:.1f} dB < {min_psnr_first} dB")
    return fails


@torch.no_grad()
def vae_ceiling(pipe, image: Tensor) -> float:
    """PSNR (dB) of the image through the pipeline's VAE alone (1-frame encode, posterior mean):
    the best frame-0 fidelity the model can reach.

    Shape:
        image ``(1, 3, H, W)`` in [0, 1] -> scalar.
    """
    x = image[:, :, None].to(pipe.vae.dtype) * 2 - 1
    rec = pipe.vae.decode(pipe.vae.encode(x).latent_dist.mode()).sample.float().clamp(-1, 1)
    mse = ((rec[:, :, 0] + 1) / 2 - image).pow(2).mean().item()
    return 10 * math.log10(1 / max(mse, 1e-12))


def generate(pipe, embeds: Tensor, defaults: dict, image: Tensor, seed: int, **over) -> Tensor:
    """One video from the plain diffusers pipeline with the shipped defaults.

    Shape:
        image ``(1, 3, H, W)`` in [0, 1] -> video ``(1, F, 3, H, W)`` in [0, 1].
    """
    kw = dict(defaults) | over
    out = pipe(
        image=image,
        prompt_embeds=embeds,
        generator=torch.Generator().manual_seed(seed),
        output_type="pt",
        **kw,
    ).frames
    return out.float().clamp(0, 1)


def summarize(rows: list[dict[str, float]]) -> dict[str, float]:
    """Mean of every key over rows (NaN-free keys only)."""
    keys = rows[0].keys()
    return {k: float(np.mean([r[k] for r in rows])) for k in keys if not math.isnan(rows[0][k])}
