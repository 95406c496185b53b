"""Flow matching on a video whose latent frame 0 is the photo's (LTX-Video, LTX-2, SANA-Video,
Cosmos-Predict2, Kandinsky 5 I2V): the noisy video, the training target and the clean estimate,
with frame 0 held at the condition.

These pipelines replace latent frame 0 by the photo's latent and step only frames 1+; how the
transformer is told differs (LTX, LTX-2, SANA-Video: timestep 0 on the frame-0 tokens; Cosmos: a
condition-mask channel and its own small timestep there; Kandinsky: a mask channel and the same
global timestep for every token), so the denoiser call is the caller's ``forward``.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from ..base import Denoised


def frame0_denoise(
    c0: Tensor, z0: Tensor, noise: Tensor, sigma: Tensor, forward: Callable[[Tensor], Tensor]
) -> Denoised:
    """``noisy = (1−σ)·z0 + σ·noise`` on frames 1+, frame 0 = ``c0``; ``pred = forward(noisy)``
    (the velocity); ``target = noise − z0`` with frame 0 = ``pred`` (detached: never stepped, so
    left out of the loss); ``x0 = noisy − σ·pred`` with frame 0 = ``c0``.

    Shape: ``c0`` ``(B,C,h,w)`` or ``(1,C,h,w)`` (one photo for the batch); ``sigma`` ``(B,)``;
    the rest ``(B,F_lat,C,h,w)``.
    """
    s = sigma.view(-1, 1, 1, 1, 1)
    first = c0.unsqueeze(1).expand(z0.shape[0], -1, -1, -1, -1)
    noisy = torch.cat([first, ((1 - s) * z0 + s * noise)[:, 1:]], 1)
    pred = forward(noisy)
    target = torch.cat([pred[:, :1].detach(), (noise - z0)[:, 1:]], 1)
    x0 = torch.cat([first, (noisy - s * pred)[:, 1:]], 1)
    return Denoised(pred=pred, target=target, x0=x0, z0=z0, noisy=noisy)
