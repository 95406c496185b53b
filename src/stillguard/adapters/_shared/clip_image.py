"""The CLIP image path of Wan2.1-style pipelines (Wan2.1-I2V, SkyReels-V2-I2V) in torch: what the
image encoder sees, redone differentiably, and the image processor read from a model folder.

The pipelines run ``CLIPImageProcessor`` on the 8-bit PIL photo (shortest-edge bicubic resize,
centre crop, mean/std); :func:`clip_pixels` does the same in torch so the gradient reaches the
photo. :func:`clip_image_processor` reads a folder's ``image_processor/preprocessor_config.json``
as a ``CLIPImageProcessor`` (its torchvision-free ``...Pil`` class): SkyReels' folders name a
``CLIPProcessor`` there, which also wants tokenizer files the image path never uses.
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import ModelError


def clip_pixels(x: Tensor, processor: Any) -> Tensor:
    """What the CLIP image encoder sees, in torch: the processor's shortest-edge bicubic resize
    (antialiased, PIL's filter), centre crop, and mean/std normalisation.

    The pipeline runs ``CLIPImageProcessor`` on the 8-bit PIL photo; the only difference left is
    PIL's rounding of the resized image to 8 bit (at most half a grey level).

    Shape:
        ``(B,3,H,W)`` in [0,1] -> ``(B,3,crop_h,crop_w)`` normalised.
    """
    size, crop = _size(processor.size), _size(processor.crop_size)
    crop_h, crop_w = crop["height"], crop["width"]
    h, w = x.shape[-2:]
    if size.get("shortest_edge"):
        short = size["shortest_edge"]
        # transformers' get_resize_output_image_size: the long side is int(short * long / short)
        nh, nw = (short, int(short * w / h)) if h <= w else (int(short * h / w), short)
    else:
        nh, nw = size["height"], size["width"]
    img = F.interpolate(x, size=(nh, nw), mode="bicubic", antialias=True, align_corners=False)
    top, left = (nh - crop_h) // 2, (nw - crop_w) // 2
    img = img.clamp(0, 1)[..., top : top + crop_h, left : left + crop_w]
    mean = torch.tensor(processor.image_mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (img - mean) / std


def _size(value: Any) -> dict[str, Any]:
    """A processor size (int, dict or transformers' ``SizeDict``) as a plain dict."""
    if isinstance(value, int):
        return {"height": value, "width": value}
    if isinstance(value, dict):
        return dict(value)
    keys = ("height", "width", "shortest_edge")
    return {k: getattr(value, k) for k in keys if getattr(value, k, None) is not None}


def clip_image_processor(src: str, subfolder: str = "image_processor") -> Any:
    """The CLIP image processor of a local folder or a hub id already in the local cache, read
    from ``<subfolder>/preprocessor_config.json`` alone (never downloaded, no tokenizer needed).

    Raises:
        ModelError: no such file.
    """
    from transformers import CLIPImageProcessorPil

    try:
        return CLIPImageProcessorPil.from_pretrained(
            src, subfolder=subfolder, local_files_only=True
        )
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read the CLIP image processor of {src}: {err}") from err
