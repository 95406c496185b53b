"""What HunyuanVideo 1.5 is conditioned on besides the noisy latent, redone in torch so that the
gradient reaches the photo, and the size rule the pipeline applies to the photo.

The pipeline (``pipeline_hunyuan_video1_5_image2video.py``) takes a PIL photo and:

1. picks its size: the bucket of ``generate_crop_size_list(target_size, 16)`` whose aspect ratio is
   nearest the photo's (``calculate_default_height_width``), then PIL-resizes and centre-crops the
   photo to it. An adapter's working size must be such a bucket (:func:`check_bucket`), so that the
   pipeline, given the working-size photo, generates at that size without resizing it again;
2. VAE road (``_get_image_latents``): the 8-bit photo as ``2x − 1``, a 1-frame VAE encode,
   posterior **mode**, ``× scaling_factor`` - plain torch once the photo is a tensor;
3. SigLIP road (``_get_image_embeds``): ``SiglipImageProcessor`` resizes the 8-bit photo to
   384×384 with PIL's bicubic filter (aspect ratio not kept, no crop), rescales by 1/255 and
   normalises with mean = std = 0.5; ``last_hidden_state`` (729 tokens × 1152) is the image
   context. :func:`siglip_pixels` does this in torch (antialiased bicubic: PIL's filter, equal to
   0.01 grey levels in float): what is left is PIL working in 8 bit, rounding and clipping after
   each of its two separable passes (measured at 480×848 -> 384: at most 1.8 grey levels, 0.3 on
   average).

:func:`batchable_vae` lets the VAE encode several photos at once (see there).
"""

from __future__ import annotations

from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from ...errors import InputError


def siglip_pixels(x: Tensor, processor: Any) -> Tensor:
    """The SigLIP processor's resize and normalisation of ``x`` in torch.

    Shape:
        ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, size_h, size_w)`` normalised.
    """
    size = processor.size
    h, w = (size["height"], size["width"]) if isinstance(size, dict) else (size.height, size.width)
    img = F.interpolate(x, size=(h, w), mode="bicubic", antialias=True, align_corners=False)
    mean = torch.tensor(processor.image_mean, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    std = torch.tensor(processor.image_std, device=x.device, dtype=x.dtype).view(1, 3, 1, 1)
    return (img.clamp(0, 1) - mean) / std


def check_bucket(pipe: Any, height: int, width: int) -> None:
    """Refuse a working size the pipeline would not generate at.

    Raises:
        InputError: ``(height, width)`` is not the pipeline's bucket for its own aspect ratio (the
            pipeline would resize the photo to that bucket); the message names the bucket.
    """
    bucket = tuple(
        pipe.video_processor.calculate_default_height_width(height, width, pipe.target_size)
    )
    if bucket != (height, width):
        raise InputError(
            f"HunyuanVideo 1.5 generates at the size bucket nearest the photo's aspect ratio "
            f"(target size {pipe.target_size}): {height}x{width} is not a bucket; the nearest is "
            f"{bucket[0]}x{bucket[1]}: use height={bucket[0]}, width={bucket[1]}"
        )


def batchable_vae(vae: Any) -> None:
    """Let the VAE encode a batch: its mid-block attention (``HunyuanVideo15AttnBlock``) builds a
    causal mask ``(B, S, S)`` for queries ``(B, 1, S, d)``, which broadcasts for ``B = 1`` only
    (diffusers 0.42.1 raises on more). Each such block of *this* VAE gets the same mask as
    ``(B, 1, S, S)``: the values of a batch of one are unchanged, a batch of ``B`` is ``B``
    encodes of one."""
    for block in vae.modules():
        stock = getattr(type(block), "prepare_causal_attention_mask", None)
        if stock is None or "prepare_causal_attention_mask" in vars(block):
            continue

        def mask(frames: int, hw: int, dtype: Any, device: Any, batch_size: Any = None,
                 stock: Any = stock) -> Tensor:  # fmt: skip
            causal = stock(frames, hw, dtype, device)
            return causal if batch_size is None else causal.expand(batch_size, 1, -1, -1)

        block.prepare_causal_attention_mask = mask
