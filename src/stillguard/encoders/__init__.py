"""Learned image networks loaded from local folders (never downloaded), for measurement.

Each is differentiable in the image (its preprocessing is redone in torch), loads ``.safetensors``
only, and has ``tiny(seed=0)``: the same architecture with random weights, for offline tests.

* :mod:`.clip`: :class:`~.clip.ClipImage` (transformers ``CLIPVisionModelWithProjection``), ``--clip``;
* :mod:`.dino`: :class:`~.dino.DinoImage` (``Dinov2Model`` or ``ViTModel``), ``--dino``;
* :mod:`.lpips`: :class:`~.lpips.Lpips` (VGG16/AlexNet trunk + LPIPS heads, in torch), ``--lpips``;
* :mod:`.arcface`: :class:`~.arcface.ArcFace` (InsightFace's IResNet, in torch), ``--arcface``;
* :mod:`.qalign`: :class:`~.qalign.QAlign` (Q-Align's scoring rule over a LLaVA folder), ``--qalign``;
* :mod:`.faces`: dlib's face detector, 5-point landmarks and ResNet descriptor (the ``faces`` extra;
  the only real face weights available offline).

Each folder comes from its option or environment variable (``--clip DIR`` / ``STILLGUARD_CLIP``, ...);
a missing one is one line naming that option (:mod:`._folder`). Modules import their heavy
dependencies (transformers, dlib) only when a model is built.
"""

from __future__ import annotations

from ._folder import option_names
from .arcface import ArcFace
from .clip import ClipImage
from .dino import DinoImage
from .lpips import Lpips
from .qalign import QAlign

#: option name -> encoder class (what ``--clip DIR`` etc. load)
ENCODERS = {
    "clip": ClipImage,
    "dino": DinoImage,
    "lpips": Lpips,
    "arcface": ArcFace,
    "qalign": QAlign,
}

__all__ = ["ENCODERS", "ArcFace", "ClipImage", "DinoImage", "Lpips", "QAlign", "option_names"]
