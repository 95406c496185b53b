"""CLIP image embeddings (Radford et al., arXiv 2103.00020) from a local folder.

The network is transformers' ``CLIPVisionModelWithProjection`` (the vision tower and its projection
of any CLIP checkpoint saved by transformers, e.g. ``openai/clip-vit-large-patch14``); the folder is
what ``save_pretrained`` writes (``config.json`` + ``model.safetensors``, optionally
``preprocessor_config.json``); a full ``CLIPModel`` folder loads too (its text tower is ignored).
Preprocessing is CLIP's (shorter side to 224 bicubic, centre crop 224, CLIP mean/std) redone in torch,
so the embedding is differentiable in the image. Used for the CLIP similarity of generated frames to
the photo (Anti-I2V, IP-Bench's CLIP image-video score).

Supplied by ``--clip DIR`` or ``STILLGUARD_CLIP``.
"""

from __future__ import annotations

import os
from pathlib import Path

import torch
from torch import Tensor

from . import _folder, _hf, _prep

KIND, WHAT = "clip", "CLIP image encoder"
DEFAULTS = {"resize": 224, "crop": 224, "mean": _prep.CLIP_MEAN, "std": _prep.CLIP_STD}


class ClipImage:
    """``ClipImage.from_folder(dir)(x) -> (B, D)`` image embeddings (not normalised).

    Shape:
        ``x``: ``(B, 3, H, W)`` in [0, 1] -> ``(B, projection_dim)``.
    """

    def __init__(self, model: torch.nn.Module, prep: dict, folder: Path | None = None) -> None:
        self.model = model.eval().requires_grad_(False)
        self.prep, self.folder = prep, folder

    @classmethod
    def from_folder(cls, folder: str | os.PathLike[str] | None = None, device: str = "cpu",
                    dtype: torch.dtype = torch.float32) -> ClipImage:  # fmt: skip
        from transformers import CLIPVisionModelWithProjection

        path = _folder.resolve(KIND, folder, WHAT)
        model = _folder.hf_load(CLIPVisionModelWithProjection, path, KIND, WHAT, dtype)
        prep = _hf.preprocessing(path, DEFAULTS)
        return cls(model.to(device), prep, path)

    @classmethod
    def tiny(cls, seed: int = 0) -> ClipImage:
        """The same architecture, a few small layers, random weights (tests; 32 px input)."""
        from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

        torch.manual_seed(seed)
        cfg = CLIPVisionConfig(hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                               num_attention_heads=2, image_size=32, patch_size=8,
                               projection_dim=16)  # fmt: skip
        prep = {**DEFAULTS, "resize": 32, "crop": 32}
        return cls(CLIPVisionModelWithProjection(cfg), prep)

    def save(self, folder: str | os.PathLike[str]) -> Path:
        """Write the folder :meth:`from_folder` reads (``save_pretrained``, safetensors)."""
        path = Path(folder)
        self.model.save_pretrained(str(path), safe_serialization=True)
        _hf.write_preprocessing(path, self.prep)
        return path

    def __call__(self, x: Tensor) -> Tensor:
        p = self.prep
        param = next(self.model.parameters())
        pix = _prep.prepare(x, p["resize"], p["crop"], p["mean"], p["std"])
        return self.model(pixel_values=pix.to(param)).image_embeds

    def similarity(self, a: Tensor, b: Tensor) -> Tensor:
        """Cosine similarity of the embeddings of ``a`` and ``b``. Shape: ``(B,3,H,W)`` x2 -> ``(B,)``."""
        return _prep.cosine(self(a), self(b))
