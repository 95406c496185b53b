"""Per-video metrics beyond motion, for :func:`~.evaluate.evaluate`'s ``video_metrics`` hook.

:func:`video_metrics` builds ``fn(video, clean_video, subject) -> {name: float}`` from what is
available; every number is a mean over the video's frames:

* face metrics (dlib; :mod:`.faces`): ``fdfr``, ``ism_cos``, ``ism_dist``, ``ism_match``,
  ``too_small`` (and ``ism_arcface`` with an ArcFace encoder), against the **original** photo's face;
* ``dino``: cosine similarity of each frame's DINO feature to the same frame of the clean video of
  the same seed (Anti-I2V's "DINO similarity to the clean reference"; 1 for the clean video itself);
* ``clip``: cosine similarity of each frame's CLIP embedding to the original photo's (IP-Bench's CLIP
  image-video score);
* ``qalign``: the Q-Align-style quality of each frame, 0..1 (Anti-I2V's Q-A(F); see
  :mod:`stillguard.encoders.qalign` for what is and is not faithful).

Encoders are given already loaded (``{"dino": DinoImage, ...}``); a missing one is simply absent.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
from torch import Tensor

from ..encoders import faces as dlib_faces
from . import faces as face_metrics


def _frames(video: Tensor) -> Tensor:
    return (video[0] if video.ndim == 5 else video).detach().float()


def video_metrics(
    original: Tensor,
    encoders: Mapping[str, Any],
    *,
    face: bool = True,
    upsample: int = 1,
    detector: str = "hog",
    min_side: int = 0,
) -> Callable[[Tensor, Tensor, str], dict[str, float]]:
    """The hook for ``evaluate(..., video_metrics=...)`` (see the module docstring).

    Args:
        original: the 8-bit original photo ``(1, 3, H, W)`` in [0, 1].
        encoders: loaded encoders by option name (``dino``, ``clip``, ``qalign``, ``arcface``).
        face: compute the dlib face metrics (only if dlib is available).
    """
    use_face = face and dlib_faces.available() is None
    ref = face_metrics.photo_face(original, upsample, detector) if use_face else None
    dino, clip, qalign = (encoders.get(k) for k in ("dino", "clip", "qalign"))
    photo_clip = None
    if clip is not None:
        with torch.no_grad():
            photo_clip = clip(original)

    @torch.no_grad()
    def fn(video: Tensor, clean: Tensor, subject: str) -> dict[str, float]:
        out: dict[str, float] = {}
        if use_face:
            m = face_metrics.video_faces(video, ref, upsample=upsample, model=detector,
                                         min_side=min_side, arcface=encoders.get("arcface"))  # fmt: skip
            out.update({k: v for k, v in m.items() if k != "face_px"})
        frames = _frames(video)
        if dino is not None:
            out["dino"] = float(dino.similarity(frames, _frames(clean)).mean())
        if clip is not None:
            emb = clip(frames)
            out["clip"] = float(torch.cosine_similarity(emb, photo_clip.expand_as(emb)).mean())
        if qalign is not None:
            out["qalign"] = float(qalign(frames).mean())
        return out

    return fn
