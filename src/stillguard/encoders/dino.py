"""DINO image features (Caron et al., arXiv 2104.14294; DINOv2, Oquab et al., arXiv 2304.07193).

Anti-I2V reports "DINO similarity" of the generated video to the clean reference video; it names
no checkpoint, so both families load: a folder whose ``config.json`` says ``model_type: dinov2``
becomes transformers' ``Dinov2Model`` (e.g. ``facebook/dinov2-base``), ``vit`` becomes ``ViTModel``
(DINO v1, e.g. ``facebook/dino-vitb16``). The feature is the final CLS token (``pooler_output``: the
layer-normed CLS for both), the usual DINO image descriptor. Preprocessing as the DINO evaluation
(shorter side to 256 bicubic, centre crop 224, ImageNet mean/std) redone in torch, or the folder's
``preprocessor_config.json``; differentiable in the image.

Supplied by ``--dino DIR`` or ``STILLGUARD_DINO``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from ..errors import ModelError
from . import _folder, _hf, _prep

KIND, WHAT = "dino", "DINO image encoder"
DEFAULTS = {"resize": 256, "crop": 224, "mean": _prep.IMAGENET_MEAN, "std": _prep.IMAGENET_STD}


def _model_class(model_type: str):  # noqa: ANN202
    from transformers import Dinov2Model, ViTModel

    return {"dinov2": Dinov2Model, "vit": ViTModel}.get(model_type)


class DinoImage:
    """``DinoImage.from_folder(dir)(x) -> (B, D)`` CLS features.

    Shape:
        ``x``: ``(B, 3, H, W)`` in [0, 1] -> ``(B, hidden_size)``.
    """

    def __init__(self, model: torch.nn.Module, prep: dict, folder: Path | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.prep, self.folder = prep, folder

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str] | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32) -> DinoImage:  # fmt: skip
        path = _folder.resolve(KIND, folder, WHAT)
        mtype = str(_folder.read_config(path, WHAT, KIND).get("model_type", ""))
        model_cls = _model_class(mtype)
        if model_cls is None:
            raise ModelError(
                f"--{KIND} {path}: config.json has model_type {mtype!r}; expected 'dinov2' "
                "(Dinov2Model) or 'vit' (ViTModel, DINO v1)"
            )
        model = _folder.hf_load(model_cls, path, KIND, WHAT, dtype)
        return cls(model.to(device), _hf.preprocessing(path, DEFAULTS), path)

    @classmethod
    def tiny(cls, seed: int = 0, family: str = "dinov2") -> DinoImage:
        """The same architecture (``dinov2`` or ``vit``), small, random weights; 32 px input."""
        from transformers import Dinov2Config, ViTConfig

        torch.manual_seed(seed)
        kw = dict(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                  num_attention_heads=2, image_size=32, patch_size=8)  # fmt: skip
        cfg = Dinov2Config(**kw) if family == "dinov2" else ViTConfig(**kw)
        model = _model_class(cfg.model_type)(cfg)
        return cls(model, {**DEFAULTS, "resize": 36, "crop": 32})

    def save(self, folder: str | os.PathLike[str]) -> Path:
        path = Path(folder)
        self.model.save_pretrained(str(path), safe_serialization=True)
        _hf.write_preprocessing(path, self.prep)
        return path

    def __call__(self, x: Tensor) -> Tensor:
        p = self.prep
        param = next(self.model.parameters())
        pix = _prep.prepare(x, p["resize"], p["crop"], p["mean"], p["std"])
        return self.model(pixel_values=pix.to(param)).pooler_output

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine similarity of the CLS features. Shape: ``(B,3,H,W)`` x2 -> ``(B,)``."""
        return _prep.cosine(self(a), self(b))
