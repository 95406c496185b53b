"""A torch stand-in for the one torchvision call of Cosmos' transformer.

With ``concat_padding_mask`` (the real 2B config) ``CosmosTransformer3DModel.forward`` resizes the
padding mask to the latent size with ``torchvision.transforms.functional.resize(...,
InterpolationMode.NEAREST)``, through a module-level name ``transforms`` that diffusers defines
only when torchvision imports; without it the forward raises ``NameError`` (torchvision does not
import on this project's torch). On a tensor, torchvision's nearest resize *is*
``torch.nn.functional.interpolate(mode="nearest")`` (it calls it), so :func:`install` puts exactly
that under the name, once, and only where the name is missing (a real torchvision is left alone).
The pipeline's padding mask is all zeros at any size anyway.
"""

from __future__ import annotations

import types
from typing import Any

import torch.nn.functional as F
from torch import Tensor


def _resize(img: Tensor, size: list[int], interpolation: Any = "nearest", **_: Any) -> Tensor:
    return F.interpolate(img, size=tuple(size), mode=str(interpolation))


def install() -> None:
    """Give ``diffusers.models.transformers.transformer_cosmos`` its ``transforms`` name if absent."""
    import diffusers.models.transformers.transformer_cosmos as module

    if getattr(module, "transforms", None) is not None:
        return
    module.transforms = types.SimpleNamespace(
        functional=types.SimpleNamespace(resize=_resize),
        InterpolationMode=types.SimpleNamespace(NEAREST="nearest"),
    )
