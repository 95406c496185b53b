"""FDFR and ISM (dlib ResNet) on videos built from real photos (scikit-image).

A "video" here is the photo repeated, with per-frame changes (JPEG 75, light noise): the face
metrics must see the same person in every frame; photos without a face give FDFR 1 and no ISM.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from stillguard.encoders import faces
from stillguard.measure.faces import photo_face, photo_identity, video_faces

skdata = pytest.importorskip("skimage.data")
if faces.available() is not None:
    pytest.fail(f"dlib is not installed: {faces.available()}", pytrace=False)


def _t(img: np.ndarray) -> torch.Tensor:
    return torch.from_numpy(img.copy()).permute(2, 0, 1)[None].float() / 255


def _resize(img: np.ndarray, size: int) -> np.ndarray:
    return np.asarray(Image.fromarray(img).resize((size, size), Image.Resampling.LANCZOS))


def _jpeg(img: np.ndarray, q: int = 75) -> np.ndarray:
    buf = io.BytesIO()
    Image.fromarray(img).save(buf, format="JPEG", quality=q)
    return np.asarray(Image.open(buf).convert("RGB"))


def _video(frames: list[np.ndarray]) -> torch.Tensor:
    return torch.cat([_t(f) for f in frames])[None]  # (1, F, 3, H, W)


@pytest.fixture(scope="module")
def face256():
    return _resize(skdata.astronaut(), 256)


def test_same_face_in_every_frame(face256):
    ref = photo_face(_t(face256))
    assert ref is not None
    noisy = np.clip(face256 + np.random.default_rng(0).normal(0, 4, face256.shape), 0, 255)
    video = _video([face256, _jpeg(face256), noisy.astype(np.uint8)])
    m = video_faces(video, ref)
    assert m["fdfr"] == 0.0 and m["ism_match"] == 1.0 and m["too_small"] == 0.0
    assert m["ism_dist"] < 0.3 and m["ism_cos"] > 0.98


@pytest.mark.parametrize("name", ["chelsea", "coffee", "rocket"])
def test_no_face_photos_fail_detection_and_have_no_ism(name, face256):
    img = _resize(getattr(skdata, name)(), 256)
    assert photo_face(_t(img)) is None
    m = video_faces(_video([img, _jpeg(img)]), None)
    assert m["fdfr"] == 1.0 and math.isnan(m["ism_cos"]) and math.isnan(m["ism_match"])
    # against the astronaut's face: no frame matches, FDFR still 1
    m = video_faces(_video([img]), photo_face(_t(face256)))
    assert m["fdfr"] == 1.0 and m["ism_match"] == 0.0 and math.isnan(m["ism_dist"])


def test_a_different_photo_does_not_match(face256):
    ref = photo_face(_t(face256))
    other = photo_face(
        _t(np.stack([_resize(skdata.camera(), 512)] * 3, -1)), upsample=0, model="cnn"
    )
    assert other is not None  # the cameraman, found by the CNN detector
    assert faces.distance(ref["descriptor"], other["descriptor"]) > faces.SAME_PERSON_DISTANCE


def test_toy_sized_frames_count_as_failures_and_say_so(face256):
    tiny = _resize(face256, 64)
    m = video_faces(_video([tiny, tiny]), photo_face(_t(face256)))
    assert m["too_small"] == 1.0 and m["fdfr"] == 1.0 and m["face_px"] == 64.0
    big = video_faces(_video([tiny]), None, min_side=256)  # enlarged the same way for every video
    assert big["face_px"] == 256.0 and big["too_small"] == 0.0


def test_the_protected_photos_own_identity(face256):
    noisy = np.clip(face256 + np.random.default_rng(1).uniform(-8, 8, face256.shape), 0, 255)
    same = photo_identity(_t(face256), _t(noisy.astype(np.uint8)))
    assert same["photo_face_found"] == 1.0 and same["photo_ism_dist"] < 0.3
    cat = _resize(skdata.chelsea(), 256)
    assert math.isnan(photo_identity(_t(cat), _t(cat))["photo_ism_dist"])
    gone = photo_identity(_t(face256), _t(cat))  # the face is gone from the "protected" photo
    assert gone["photo_face_found"] == 0.0


def test_arcface_column_from_a_tiny_model(face256):
    from stillguard.encoders import ArcFace

    m = video_faces(_video([face256]), photo_face(_t(face256)), arcface=ArcFace.tiny())
    assert m["ism_arcface"] == pytest.approx(1.0, abs=1e-4)  # same crop, same embedding
