"""Where the budget goes: a per-pixel weight that concentrates a perturbation on salient pixels.

Anti-I2V's abstract says its Dual-Space Perturbation is "concentrating on salient pixels"; the
authors' baseline scripts import face masks (``load_mask``, ``FaceProcessing``) and their data are
faces (CelebV-Text). Neither the saliency definition nor the weighting is given. Our choices:

* ``mask="face"``: the union of the faces dlib finds (HOG detector, one upsample; the 5-point
  landmarks, when available, centre an ellipse on the eyes and nose), each an ellipse of the
  detector box grown by 30 %, edges feathered; from :mod:`stillguard.encoders.faces` (dlib-bin +
  face-recognition-models, CC0; no other weights). An image without a face falls back to
  saliency, with a logged warning;
* ``mask="saliency"``: frequency-tuned saliency (Achanta, Hemami, Estrada, Susstrunk,
  "Frequency-tuned Salient Region Detection", CVPR 2009): the CIE Lab distance of each slightly
  blurred pixel from the image's mean colour, scaled to [0, 1]; no learned weights (a subject
  that differs in colour from the rest of the photo stands out);
* a path to a grey image (white = salient), resized to the photo;
* the weight is ``floor + (1 - floor) * m`` with ``m`` in [0, 1]: the full budget on the mask,
  ``floor`` times the budget elsewhere (``mask_floor``, default 0.25), applied to the summed
  perturbation before the RGB box, so ``|delta| <= weight * eps`` per pixel.
"""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import Tensor

from ..errors import InputError

log = logging.getLogger(__name__)
MASKS = ("face", "saliency")
#: grow factor of a detector box before it becomes the face ellipse
GROW = 1.3


def check_mask(spec: str | None) -> None:
    """Refuse an unknown mask spec (a name or an existing image file) before any work."""
    if spec is None or spec in MASKS:
        return
    if not Path(spec).is_file():
        raise InputError(f"mask {spec!r} is neither face, saliency nor an existing image file")


def face_available() -> str | None:
    """``None`` when the face mask can run here, else the one-line reason."""
    try:
        from ..encoders import faces
    except ImportError:
        return "the face mask needs stillguard.encoders.faces (dlib), which this build lacks"
    return faces.available()


def saliency(x: Tensor) -> Tensor:
    """Frequency-tuned saliency in [0, 1]: each pixel's CIE Lab distance, after a small blur, from
    the image's mean colour (Achanta et al., CVPR 2009). Shape: ``(B,3,H,W)`` -> ``(B,1,H,W)``."""
    from kornia.color import rgb_to_lab

    k = torch.tensor([1.0, 4.0, 6.0, 4.0, 1.0], device=x.device) / 16
    kernel = (k[:, None] * k[None, :]).view(1, 1, 5, 5).repeat(3, 1, 1, 1)
    img = x.detach().float()
    blurred = F.conv2d(F.pad(img, (2, 2, 2, 2), mode="replicate"), kernel, groups=3)
    lab, mean = rgb_to_lab(blurred), rgb_to_lab(img).mean((-2, -1), keepdim=True)
    sal = (lab - mean).pow(2).sum(1, keepdim=True).sqrt()
    lo = sal.amin((-2, -1), keepdim=True)
    hi = sal.amax((-2, -1), keepdim=True)
    return ((sal - lo) / (hi - lo).clamp_min(1e-12)).to(x)


def faces_mask(x: Tensor) -> Tensor | None:
    """Feathered face ellipses in [0, 1] for each image, or ``None`` where no image has a face.
    Shape: ``(B,3,H,W)`` -> ``(B,1,H,W)``."""
    from ..encoders import faces

    b, _, h, w = x.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float64)
    out = np.zeros((b, 1, h, w))
    found = False
    for i in range(b):
        img = (x[i].detach().float().cpu().clamp(0, 1).permute(1, 2, 0).numpy() * 255).round()
        img = np.ascontiguousarray(img.astype(np.uint8))
        for box in faces.detect(img, upsample=1):
            left, top, right, bottom = _box(box)
            cx, cy = (left + right) / 2, (top + bottom) / 2
            try:
                pts = np.asarray(faces.landmarks5(img, box), dtype=np.float64)
                cx, cy = pts[:, 0].mean(), pts[:, 1].mean()
            except Exception:  # noqa: BLE001 - landmarks are a refinement only
                pass
            rx, ry = GROW * (right - left) / 2, GROW * (bottom - top) / 2
            d = ((xx - cx) / max(rx, 1)) ** 2 + ((yy - cy) / max(ry, 1)) ** 2
            out[i, 0] = np.maximum(out[i, 0], np.clip((1.2 - d) / 0.4, 0, 1))
            found = True
    return torch.from_numpy(out).to(x) if found else None


def _box(box: object) -> tuple[float, float, float, float]:
    """``(left, top, right, bottom)`` of a dlib rectangle or a 4-sequence in that order."""
    if hasattr(box, "left"):
        return float(box.left()), float(box.top()), float(box.right()), float(box.bottom())
    left, top, right, bottom = (float(v) for v in box)  # type: ignore[union-attr]
    return left, top, right, bottom


def mask_of(spec: str, x: Tensor) -> Tensor:
    """The salient-pixel mask ``(B,1,H,W)`` in [0, 1] of ``x`` ``(B,3,H,W)`` (see the module).

    Raises:
        InputError: ``mask="face"`` where dlib is unavailable (the reason), or an unreadable file.
    """
    if spec == "face":
        why = face_available()
        if why is not None:
            raise InputError(f"mask='face' cannot run: {why}; use mask='saliency'")
        m = faces_mask(x)
        if m is not None:
            return m
        log.warning("no face found in the image: the perturbation follows saliency instead")
        return saliency(x)
    if spec == "saliency":
        return saliency(x)
    from ..images import load_image

    try:
        img = load_image(Path(spec), min_side=1).tensor.mean(1, keepdim=True)
    except Exception as err:  # noqa: BLE001 - one line for any unreadable mask file
        raise InputError(f"cannot read the mask {spec!r}: {err}") from None
    m = F.interpolate(img, size=x.shape[-2:], mode="bilinear", align_corners=False)
    return m.clamp(0, 1).to(x).expand(x.shape[0], -1, -1, -1)


def budget_weight(mask: Tensor, floor: float) -> Tensor:
    """``floor + (1 - floor) * mask``: the fraction of the budget each pixel may use."""
    return floor + (1.0 - floor) * mask
