"""Face metrics of generated videos: FDFR and ISM with dlib (optionally ArcFace from a folder).

* **FDFR** (face detection failure rate, Anti-DreamBooth, Anti-I2V): the fraction of frames in
  which dlib's detector (HOG by default, the CNN/MMOD one as an option) finds no face.
* **ISM (dlib ResNet)**: identity similarity between the photo's face and the face found in each
  frame, with dlib's 128-d ResNet descriptor, reported two ways: the mean **cosine** similarity and
  the mean **euclidean distance** over frames with a face, plus the **match rate**, the share of all
  frames whose face is within dlib's 0.6 "same person" distance (a frame without a face does not
  match). The papers' ISM uses ArcFace; this is NOT ArcFace and is named so. dlib descriptors are
  not centred: different people still have cosines around 0.8, so read the distance (and the match
  rate) for "same person?". When ``--arcface DIR`` is given, ``ism_arcface`` adds the ArcFace
  cosine of the same crops (:mod:`stillguard.encoders.arcface`).
* **Photo identity**: the protected photo's own face against the original's (a protection must
  leave the person recognisable in the photo itself).

Choices: the photo's face is its most confident detection; per frame, the most confident one.
Frames may be enlarged before detection (``min_side``: nearest-neighbour to at least that many
pixels on the shorter side; clean and protected frames always get the same factor). dlib's HOG
window is 80 px, so the smallest face it finds is about ``80 / 2**upsample`` px; a frame whose
shorter side is under twice that (a portrait's face is about half the frame) is flagged
``too_small``: every frame of the toys' 64x64 videos counts as a detection failure, and the bench
table says so.
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch
from torch import Tensor

from ..encoders import faces
from ..tensors import to_uint8
from .media import scale_for, upscale

HOG_WINDOW = 80
KEYS = ("fdfr", "ism_cos", "ism_dist", "ism_match")


def min_face(upsample: int) -> float:
    """The smallest face (px) dlib's HOG detector finds at ``upsample``."""
    return HOG_WINDOW / 2**upsample


def _frames(video: Tensor) -> np.ndarray:
    return to_uint8(video if video.ndim == 5 else video[None])  # (F, H, W, 3), even for F = 1


def photo_face(image: Tensor, upsample: int = 1, model: str = "hog") -> dict[str, Any] | None:
    """The photo's most confident face: ``{"box", "descriptor", "pixels"}``, or ``None``.

    Shape:
        ``image``: ``(1, 3, H, W)`` or ``(3, H, W)`` in [0, 1].
    """
    img = to_uint8(image[0] if image.ndim == 4 else image)
    boxes = faces.detect(img, upsample, model)
    if not boxes:
        return None
    return {"box": boxes[0], "descriptor": faces.descriptor(img, boxes[0]), "pixels": img}


def _crop(img: np.ndarray, box: tuple[int, int, int, int]) -> Tensor:
    h, w = img.shape[:2]
    left, top = max(0, box[0]), max(0, box[1])
    right, bottom = min(w, box[2] + 1), min(h, box[3] + 1)
    crop = img[top:bottom, left:right] if right > left and bottom > top else img
    return torch.from_numpy(crop.copy()).permute(2, 0, 1)[None].float() / 255


def video_faces(video: Tensor, ref: dict[str, Any] | None, *, upsample: int = 1, model: str = "hog",
                min_side: int = 0, arcface: Any = None) -> dict[str, float]:  # fmt: skip
    """FDFR and ISM of one video against the photo's face ``ref`` (from :func:`photo_face`).

    Returns:
        ``fdfr``, ``ism_cos``, ``ism_dist``, ``ism_match`` (``nan`` without a reference face, or for
        the means when no frame has a face), ``ism_arcface`` when ``arcface`` is given,
        ``face_px`` (the detected frames' shorter side) and ``too_small`` (1.0 or 0.0).
    Shape:
        ``video``: ``(1, F, 3, H, W)`` or ``(F, 3, H, W)`` in [0, 1].
    """
    frames = _frames(video)
    factor = scale_for(min(frames.shape[1:3]), min_side) if min_side else 1
    frames = upscale(frames, factor)
    side = min(frames.shape[1:3])
    found, cos, dist, arc = 0, [], [], []
    ref_arc = arcface(_crop(ref["pixels"], ref["box"])) if (arcface is not None and ref) else None
    for fr in frames:
        boxes = faces.detect(fr, upsample, model)
        if not boxes:
            continue
        found += 1
        if ref is None:
            continue
        d = faces.descriptor(fr, boxes[0])
        cos.append(faces.cosine(ref["descriptor"], d))
        dist.append(faces.distance(ref["descriptor"], d))
        if ref_arc is not None:
            with torch.no_grad():
                arc.append(float(torch.cosine_similarity(arcface(_crop(fr, boxes[0])), ref_arc)[0]))
    n = len(frames)
    mean = lambda xs: float(np.mean(xs)) if xs else math.nan  # noqa: E731
    out = {
        "fdfr": 1.0 - found / n,
        "ism_cos": mean(cos),
        "ism_dist": mean(dist),
        "ism_match": (sum(d < faces.SAME_PERSON_DISTANCE for d in dist) / n) if ref else math.nan,
        "face_px": float(side),
        "too_small": float(side < 2 * min_face(upsample)),
    }
    if arcface is not None:
        out["ism_arcface"] = mean(arc)
    return out


def photo_identity(original: Tensor, protected: Tensor, *, upsample: int = 1,
                   model: str = "hog") -> dict[str, float]:  # fmt: skip
    """The protected photo's face vs the original's: ``photo_ism_cos``, ``photo_ism_dist``,
    ``photo_face_found`` (``nan`` distances when the original has no face; distance ``nan`` and
    found 0 when the protection hid the face from the detector)."""
    ref = photo_face(original, upsample, model)
    if ref is None:
        return {"photo_ism_cos": math.nan, "photo_ism_dist": math.nan, "photo_face_found": math.nan}
    other = photo_face(protected, upsample, model)
    if other is None:
        return {"photo_ism_cos": math.nan, "photo_ism_dist": math.nan, "photo_face_found": 0.0}
    return {
        "photo_ism_cos": faces.cosine(ref["descriptor"], other["descriptor"]),
        "photo_ism_dist": faces.distance(ref["descriptor"], other["descriptor"]),
        "photo_face_found": 1.0,
    }
