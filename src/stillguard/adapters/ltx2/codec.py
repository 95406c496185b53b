"""LTX-2's H.264 re-encode of the photo, in the attack path.

``LTX2ImageToVideoPipeline`` re-encodes the photo as one H.264 frame (libx264, ``preset
veryfast``, 4:2:0, ``image_crf`` 33 with Gemma-3 text encoders) before resizing it and running the
VAE (diffusers' ``ltx2/utils.py::apply_image_conditioning_crf``, PyAV). Nothing about that codec
is differentiable, and no smooth stand-in predicts it well. Measured on the bundled sample photo
(``benchmarks/ltx2_codec.py``, at 256x256 and at LTX-2's 512x768): the change the codec makes when
an 8/255 perturbation is added points only loosely where a stand-in's change points: cosine
0.09-0.39 for kornia's differentiable JPEG (quality 30-90) and 0.06-0.24 for a 4:2:0 + 4x4-DCT
quantiser at x264's QP, against 0.14-0.41 for the identity; and for smooth perturbations the codec
changes its output by 2-3 times the perturbation (CRF 33 quantises so coarsely that a small change
mostly flips quantisation and mode decisions). One photo only: a hint, not a law.

So the attack uses the **real codec in the forward pass and the identity in the backward pass**
(a straight-through estimator; BPDA, Athalye et al., arXiv 1802.00420): the model sees exactly
the photo the pipeline would give it (8-bit rounding and the codec, diffusers' own function), and
the gradient passes as if the codec were not there. ``codec="skip"`` leaves the codec out of the
attack path altogether (the model then sees the uncompressed photo). Without PyAV the codec cannot
run: the attack skips it and says so (a logged warning, and ``describe()["codec"]``).

The codec runs on the photo at the working size (after the resize), as :meth:`generate` gives
the pipeline the working-size photo; a user who hands the pipeline a larger photo has the codec
run at that size before the resize (not modelled). On the meta device and under the planner's
fake tensors (no values) the codec is skipped: it costs a few milliseconds of CPU per step.
"""

from __future__ import annotations

import logging

import numpy as np
import torch
from torch import Tensor
from torch._subclasses.fake_tensor import is_fake

logger = logging.getLogger(__name__)

CODECS = ("straight-through", "skip")


def pyav_missing() -> str | None:
    """``None`` when PyAV (the ``av`` package) can run the pipeline's codec, else why not."""
    from diffusers.utils import is_av_available

    if is_av_available():
        return None
    return "PyAV (the 'av' package) is not installed: pip install 'stillguard[eval]' or av"


def h264_frame(img: np.ndarray, crf: int) -> np.ndarray:
    """The pipeline's own re-encode of one ``(H, W, 3)`` uint8 photo at ``crf`` (0: unchanged)."""
    from diffusers.pipelines.ltx2.utils import apply_image_conditioning_crf

    return apply_image_conditioning_crf(img, crf)


def h264_straight_through(x: Tensor, crf: int) -> Tensor:
    """``x`` ``(B, 3, H, W)`` in [0, 1] rounded to 8 bit and re-encoded at ``crf`` (each image on
    its own), with the gradient of the identity: ``x + (coded − x).detach()``."""
    if x.device.type == "meta" or is_fake(x) or not crf:
        return x
    arr = (x.detach().float().clamp(0, 1) * 255).round().to(torch.uint8).permute(0, 2, 3, 1)
    coded = [torch.from_numpy(h264_frame(a.cpu().numpy(), crf).copy()) for a in arr]
    out = torch.stack(coded).permute(0, 3, 1, 2).to(x.device, x.dtype) / 255
    if out.shape != x.shape:  # libx264 needs even sides; the working size is a multiple of 32
        raise ValueError(f"the H.264 re-encode changed the photo's shape {tuple(x.shape)}")
    return x + (out - x).detach()


def resolve_codec(codec: str, crf: int) -> str:
    """The codec the attack path can actually run: ``codec`` unless the pipeline's re-encode is
    off (``crf == 0``: ``"none"``) or PyAV is missing (``"skip"``, with a warning)."""
    if not crf:
        return "none"
    if codec == "straight-through":
        reason = pyav_missing()
        if reason is not None:
            logger.warning(
                "ltx2-i2v: the pipeline re-encodes the photo with H.264 (CRF %d) but %s; the attack "
                "skips the codec (the model sees the uncompressed photo)", crf, reason,
            )  # fmt: skip
            return "skip"
    return codec
