"""dlib's face models (the ``faces`` extra) on real photos that ship in scikit-image.

``astronaut()`` has one frontal face (Eileen Collins); ``chelsea`` (a cat), ``coffee`` and ``rocket``
have none; ``camera()`` is a different person, found by the CNN detector only. Thresholds: dlib's
own 0.6 euclidean "same person" distance.
"""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image

from stillguard.encoders import faces
from stillguard.errors import InputError

skdata = pytest.importorskip("skimage.data")
if faces.available() is not None:  # the eval extra installs dlib; CI must run these
    pytest.fail(f"dlib is not installed: {faces.available()}", pytrace=False)

FACE = (175, 76, 265, 166)  # astronaut's face: left, top, right, bottom (checked by eye)


def _jpeg(img: np.ndarray, quality: int) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=quality)
    return np.asarray(Image.open(buf).convert("RGB"))


def _iou(a, b) -> float:
    ix = max(0, min(a[2], b[2]) - max(a[0], b[0]))
    iy = max(0, min(a[3], b[3]) - max(a[1], b[1]))
    inter = ix * iy
    area = lambda r: (r[2] - r[0]) * (r[3] - r[1])  # noqa: E731
    return inter / (area(a) + area(b) - inter)


def test_available_and_the_face_is_found_first():
    assert faces.available() is None
    boxes = faces.detect(skdata.astronaut())
    assert boxes and _iou(boxes[0], FACE) > 0.7


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_no_face_in_photos_without_one(name):
    assert faces.detect(getattr(skdata, name)()) == []


def test_landmarks_lie_in_the_face_box():
    img = skdata.astronaut()
    pts = faces.landmarks5(img, FACE)
    assert pts.shape == (5, 2)
    assert (pts[:, 0] >= FACE[0]).all() and (pts[:, 0] <= FACE[2]).all()
    assert (pts[:, 1] >= FACE[1]).all() and (pts[:, 1] <= FACE[3]).all()


def test_same_face_stays_near_after_jpeg_and_noise_other_person_does_not():
    img = skdata.astronaut()
    ref = faces.descriptor(img, faces.detect(img)[0])
    assert ref.shape == (128,)
    jp = _jpeg(img, 75)
    noisy = np.clip(img + np.random.default_rng(0).normal(0, 6, img.shape), 0, 255).astype(np.uint8)
    for other in (jp, noisy):
        d = faces.descriptor(other, faces.detect(other)[0])
        assert faces.distance(ref, d) < 0.3  # well inside dlib's 0.6 "same person"
        assert faces.cosine(ref, d) > 0.98
    cam = np.stack([skdata.camera()] * 3, -1)
    boxes = faces.detect(cam, upsample=0, model="cnn")
    assert boxes  # the HOG detector misses this half-profile face; the CNN one finds it
    assert faces.distance(ref, faces.descriptor(cam, boxes[0])) > faces.SAME_PERSON_DISTANCE


def test_bad_arrays_are_refused():
    with pytest.raises(InputError, match="uint8"):
        faces.detect(skdata.astronaut().astype(np.float32))
    with pytest.raises(InputError, match="hog"):
        faces.detect(skdata.astronaut(), model="retina")


def test_missing_dlib_is_one_line(monkeypatch):
    import importlib.util

    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda n, *a: None if n == "dlib" else real(n, *a)
    )
    reason = faces.available()
    assert reason is not None and "stillguard[faces]" in reason and "\n" not in reason
