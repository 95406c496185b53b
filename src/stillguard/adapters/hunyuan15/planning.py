"""The transformer's forward without its two data-dependent steps, for sizing runs.

``HunyuanVideo15Transformer3DModel.forward`` reads tensor values twice: ``is_t2v =
torch.all(image_embeds == 0)`` decides a Python branch, and the context tokens are reordered per
batch item with boolean masks (``image[image_mask]``, ...: valid tokens first, padding last). Fake
tensors (``stillguard plan``) have no values, so both raise there. :func:`sizing_forward` is the
same computation on the same submodules with the context in a fixed order ``[image, ByT5, Qwen]``
and padded tokens zeroed by multiplication: the same tensors, shapes and operations up to that
permutation of the context (attention does not depend on the order of its keys), and the photo
always counts as an image (the I2V case). :func:`sized` swaps it in as the module's ``forward``, so
the module's hooks (a capture's) still run. Used only when the tensors are fake or on ``meta``;
``tests/test_adapter_hunyuan15.py`` checks it against the stock forward on real tensors.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator
from typing import Any

import torch
from torch import Tensor


def sizing_forward(
    self: Any,
    hidden_states: Tensor,
    timestep: Tensor,
    encoder_hidden_states: Tensor,
    encoder_attention_mask: Tensor,
    encoder_hidden_states_2: Tensor,
    encoder_attention_mask_2: Tensor,
    image_embeds: Tensor,
    return_dict: bool = False,
    **_: Any,
) -> tuple[Tensor]:
    """The stock forward (I2V, no MeanFlow) with the context concatenated in a fixed order.

    Shape: as the stock forward: ``hidden_states (B, C_in, F, H, W)`` -> ``((B, C_out, F, H, W),)``.
    """
    b, _, f, h, w = hidden_states.shape
    p_t, p = self.config.patch_size_t, self.config.patch_size
    rope = self.rope(hidden_states)
    temb = self.time_embed(timestep)
    video = self.x_embedder(hidden_states)

    def typed(states: Tensor, kind: int) -> Tensor:
        ids = torch.full(states.shape[:2], kind, dtype=torch.long, device=states.device)
        return states + self.cond_type_embed(ids)

    mask = encoder_attention_mask.to(video.dtype)
    mask_2 = encoder_attention_mask_2.to(video.dtype)
    text = typed(self.context_embedder(encoder_hidden_states, timestep, encoder_attention_mask), 0)
    text_2 = typed(self.context_embedder_2(encoder_hidden_states_2), 1)
    image = typed(self.image_embedder(image_embeds), 2)
    context = torch.cat([image, text_2 * mask_2[..., None], text * mask[..., None]], 1)
    ones = torch.ones(image.shape[:2], dtype=video.dtype, device=video.device)
    context_mask = torch.cat([ones, mask_2, mask], 1).bool()
    for block in self.transformer_blocks:
        args = (video, context, temb, context_mask, rope)
        if torch.is_grad_enabled() and self.gradient_checkpointing:
            video, context = self._gradient_checkpointing_func(block, *args)
        else:
            video, context = block(*args)
    out = self.proj_out(self.norm_out(video, temb))
    out = out.reshape(b, f // p_t, h // p, w // p, -1, p_t, p, p)
    out = out.permute(0, 4, 1, 5, 2, 6, 3, 7).flatten(6, 7).flatten(4, 5).flatten(2, 3)
    return (out,)


@contextlib.contextmanager
def sized(transformer: Any) -> Iterator[None]:
    """Inside, ``transformer(...)`` runs :func:`sizing_forward` (hooks included); restored after."""
    transformer.forward = types.MethodType(sizing_forward, transformer)
    try:
        yield
    finally:
        del transformer.forward
