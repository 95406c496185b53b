"""Faces with dlib (King, JMLR 2009): detection, 5-point landmarks and the ResNet face descriptor.

The only real pretrained face models that work offline here: the ``dlib-bin`` wheel (dlib's HOG
frontal face detector is built into it) and the ``face-recognition-models`` package, which ships
dlib's CNN (MMOD) face detector, 5-point landmark model and ResNet face-descriptor model
(``dlib_face_recognition_resnet_model_v1``: 128-d descriptors, 99.38 % on LFW; dlib's documentation
puts "same person" at a euclidean distance below 0.6). Those files are CC0. The package also carries
the 68-point iBUG model, whose licence forbids commercial use: it is never loaded here.

Install: the ``faces`` extra (``pip install 'stillguard[faces]'``, part of ``eval``). Without it,
:func:`available` returns one line saying so and the callers leave the face columns out.

Conventions: images are ``(H, W, 3)`` ``uint8`` RGB arrays; a box is ``(left, top, right, bottom)``
in pixels (dlib's rectangle, right/bottom inclusive). Choices: the model files are located through
the package's folder rather than by importing it (its ``__init__`` needs ``pkg_resources``, which
recent setuptools removed); models load once per process; ``descriptor`` aligns the face with the
5-point landmarks into a 150x150 chip (dlib's own ``compute_face_descriptor``) with no jitter.
"""

from __future__ import annotations

import importlib.util
import logging
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from ..errors import InputError, StillguardError

log = logging.getLogger(__name__)

Box = tuple[int, int, int, int]
MODELS = {
    "landmarks5": "shape_predictor_5_face_landmarks.dat",
    "descriptor": "dlib_face_recognition_resnet_model_v1.dat",
    "cnn": "mmod_human_face_detector.dat",
}
#: dlib's published "same person" threshold on the descriptor's euclidean distance
SAME_PERSON_DISTANCE = 0.6
INSTALL = "pip install 'stillguard[faces]' (dlib-bin and face-recognition-models)"


def _models_dir() -> Path | None:
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or not spec.submodule_search_locations:
        return None
    return Path(next(iter(spec.submodule_search_locations))) / "models"


def available() -> str | None:
    """``None`` when dlib and its models are usable, else the one-line reason."""
    if importlib.util.find_spec("dlib") is None:
        return f"face metrics need dlib: {INSTALL}"
    folder = _models_dir()
    if folder is None:
        return f"face metrics need dlib's models: {INSTALL}"
    missing = [f for f in MODELS.values() if not (folder / f).is_file()]
    if missing:
        return f"face-recognition-models is incomplete (missing {missing[0]}): reinstall it"
    return None


def _require() -> Any:
    reason = available()
    if reason is not None:
        raise StillguardError(reason)
    import dlib

    return dlib


@cache
def _model(name: str) -> Any:
    dlib = _require()
    if name == "hog":
        return dlib.get_frontal_face_detector()
    path = str(_models_dir() / MODELS[name])
    build = {"landmarks5": dlib.shape_predictor, "descriptor": dlib.face_recognition_model_v1,
             "cnn": dlib.cnn_face_detection_model_v1}[name]  # fmt: skip
    log.debug("loading dlib model %s", path)
    return build(path)


def _check(img: Any) -> np.ndarray:
    if (
        not isinstance(img, np.ndarray)
        or img.dtype != np.uint8
        or img.ndim != 3
        or img.shape[2] != 3
    ):
        what = f"{img.dtype} {img.shape}" if isinstance(img, np.ndarray) else type(img).__name__
        raise InputError(f"dlib needs an (H, W, 3) uint8 RGB array, got {what}")
    return np.ascontiguousarray(img)


def _rect(box: Box) -> Any:
    import dlib

    left, top, right, bottom = (int(v) for v in box)
    return dlib.rectangle(left, top, right, bottom)


def detect(img: np.ndarray, upsample: int = 1, model: str = "hog") -> list[Box]:
    """Face boxes, the most confident first (dlib's detection score).

    Args:
        img: ``(H, W, 3)`` uint8 RGB.
        upsample: times the image is doubled before detection (dlib's own argument; finds faces
            down to about 40 px at 1, 20 px at 2).
        model: ``"hog"`` (dlib's HOG + linear SVM frontal detector) or ``"cnn"`` (MMOD CNN; slower,
            finds more poses).
    """
    if model not in ("hog", "cnn"):
        raise InputError(f"face detector {model!r}: use 'hog' or 'cnn'")
    arr = _check(img)
    if model == "cnn":
        found = [(d.confidence, d.rect) for d in _model("cnn")(arr, int(upsample))]
    else:
        rects, scores, _ = _model("hog").run(arr, int(upsample), 0.0)
        found = list(zip(scores, rects, strict=True))
    found.sort(key=lambda sr: -sr[0])
    return [(r.left(), r.top(), r.right(), r.bottom()) for _, r in found]


def landmarks5(img: np.ndarray, box: Box) -> np.ndarray:
    """dlib's 5 landmarks (eye corners and the bottom of the nose). Shape: ``(5, 2)`` x, y pixels."""
    shape = _model("landmarks5")(_check(img), _rect(box))
    return np.array([(shape.part(i).x, shape.part(i).y) for i in range(5)], dtype=np.float64)


def descriptor(img: np.ndarray, box: Box) -> np.ndarray:
    """The 128-d ResNet face descriptor of the face in ``box``. Shape: ``(128,)`` float64."""
    arr = _check(img)
    shape = _model("landmarks5")(arr, _rect(box))
    return np.asarray(_model("descriptor").compute_face_descriptor(arr, shape), dtype=np.float64)


def cosine(a: np.ndarray, b: np.ndarray) -> float:
    """Cosine similarity of two descriptors."""
    return float(np.dot(a, b) / (np.linalg.norm(a) * np.linalg.norm(b) + 1e-12))


def distance(a: np.ndarray, b: np.ndarray) -> float:
    """Euclidean distance of two descriptors (dlib's measure; < 0.6 means the same person)."""
    return float(np.linalg.norm(np.asarray(a) - np.asarray(b)))
