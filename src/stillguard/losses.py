"""Loss building blocks: pure tensor functions, differentiable, no model knowledge.

Methods compose these; none of them draws random numbers or touches a model.

Batches: the losses a batched method uses (:func:`attention_frobenius`, :func:`mse`,
:func:`diffusion_loss`, :func:`sds_surrogate`) return one value per image, ``(B,)``, reduced by
:func:`per_image`; for one image that is a 0-dim tensor, as before. Each image's value is its own
mean, so the gradient of their sum with respect to image ``b`` is that of image ``b``'s loss alone.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor


def per_image(values: Tensor, batch: int) -> Tensor:
    """Mean of ``values`` per image: ``(B·k, ...)`` batch-major -> ``(B,)``; 0-dim when ``B == 1``.

    Raises:
        ValueError: the leading axis is not a multiple of ``batch``.
    """
    if values.dim() == 0 or values.shape[0] % batch:
        raise ValueError(
            f"cannot split a tensor of shape {tuple(values.shape)} into {batch} images"
        )
    out = values.float().reshape(batch, -1).mean(1)
    return out[0] if batch == 1 else out


def attention_frobenius(
    maps: Sequence[Tensor], batch: int = 1, text: Sequence[int] | None = None
) -> Tensor:
    """Mean over maps of the squared Frobenius norm of each map, divided by its number of rows.

    This is Vid-Freeze's ``(1/L) sum_l ||A_l||_F^2`` (arXiv 2509.23279, Eq. 7) with every map
    normalised by its row count (batch x heads x queries), so maps with different query counts
    (sampled vs exact, text vs video rows) weigh the same. Each row of a probability map sums to 1,
    so a row contributes at least ``1/K`` (uniform over ``K`` keys) and at most 1 (one-hot).

    ``text[i] = T > 0``: map ``i`` has ``T`` text tokens first on its key axis (and on its query
    axis when it is square, i.e. holds every row); only its video rows against its video keys
    count, each row renormalised over the video keys, computed as ``sum p^2 / (sum p)^2`` on
    views (no copy of the map; the same value and gradient as renormalising first).

    Shape:
        each map ``(B', heads, Q, K)`` with rows summing to 1 and ``B'`` a batch-major multiple of
        ``batch`` -> ``(batch,)`` per-image values (0-dim for one image).
    """
    if not maps:
        raise ValueError("attention_frobenius needs at least one attention map")
    text = list(text) if text is not None else [0] * len(maps)
    vals = []
    for m, t in zip(maps, text, strict=True):
        if t > 0:
            block = (m[..., t:, :] if m.shape[-2] == m.shape[-1] else m)[..., t:].float()
            rows = block.pow(2).sum(-1) / block.sum(-1).pow(2).clamp_min(1e-24)
        else:
            rows = m.float().pow(2).sum(-1)
        vals.append(per_image(rows, batch))
    return torch.stack(vals).mean(0)


def uniform_attention_floor(maps: Sequence[Tensor], text: Sequence[int] | None = None) -> float:
    """The value :func:`attention_frobenius` takes when every map is uniform: ``mean(1/K)`` over
    the keys that count (``K - text[i]``).

    Shape:
        each map ``(..., Q, K)`` -> float.
    """
    if not maps:
        raise ValueError("uniform_attention_floor needs at least one attention map")
    text = list(text) if text is not None else [0] * len(maps)
    return sum(1.0 / (m.shape[-1] - t) for m, t in zip(maps, text, strict=True)) / len(maps)


def attention_entropy(maps: Sequence[Tensor]) -> Tensor:
    """Mean row entropy (nats) of attention maps, for diagnostics (maximal for uniform rows).

    Shape:
        each map ``(..., Q, K)`` -> scalar.
    """
    vals = [-(m.float() * m.float().clamp_min(1e-12).log()).sum(-1).mean() for m in maps]
    return torch.stack(vals).mean()


def attention_divergence(maps: Sequence[Tensor], refs: Sequence[Tensor]) -> Tensor:
    """Mean over pairs of the mean squared difference between attention maps.

    Shape:
        ``maps[i]`` and ``refs[i]`` ``(..., Q, K)``, same shapes -> scalar.
    """
    if len(maps) != len(refs) or not maps:
        raise ValueError(f"need equally many maps and references, got {len(maps)} and {len(refs)}")
    return torch.stack(
        [F.mse_loss(a.float(), b.float()) for a, b in zip(maps, refs, strict=True)]
    ).mean()


def align_features(a: Tensor, b: Tensor) -> tuple[Tensor, Tensor]:
    """Bring two feature tensors of possibly different shapes to one common shape.

    Equal shapes pass through. Otherwise both are reduced to the smaller size on every axis after
    the first (the batch axis must match): channel-like axes by averaging groups of neighbours
    (the common size is the gcd of the two), spatial/token axes by adaptive average pooling. This
    makes "pull layer j onto layer i" losses defined for U-Nets, whose blocks differ in shape.

    Shape:
        ``a`` ``(B, C_a, *S_a)``, ``b`` ``(B, C_b, *S_b)`` with ``len(S_a) == len(S_b)`` in {1, 2}
        -> both ``(B, gcd(C_a, C_b), *min(S_a, S_b))``; ``(B, N, D)`` tokens are treated as
        ``(B, D, N)``.
    """
    if a.shape == b.shape:
        return a, b
    if a.dim() != b.dim() or a.shape[0] != b.shape[0] or a.dim() not in (3, 4):
        raise ValueError(f"cannot align features of shapes {tuple(a.shape)} and {tuple(b.shape)}")
    tokens = a.dim() == 3
    if tokens:  # (B, N, D) -> (B, D, N)
        a, b = a.transpose(1, 2), b.transpose(1, 2)
    c = math.gcd(a.shape[1], b.shape[1])
    size = tuple(min(sa, sb) for sa, sb in zip(a.shape[2:], b.shape[2:], strict=True))
    pool = F.adaptive_avg_pool1d if a.dim() == 3 else F.adaptive_avg_pool2d

    def reduce(t: Tensor) -> Tensor:
        t = pool(t, size)
        return t.unflatten(1, (c, t.shape[1] // c)).mean(2)

    a, b = reduce(a), reduce(b)
    if tokens:
        a, b = a.transpose(1, 2), b.transpose(1, 2)
    return a, b


def feature_mse(a: Tensor, b: Tensor, *, relative: bool = False) -> Tensor:
    """Mean squared error between two features (aligned with :func:`align_features` if needed).

    With ``relative=True`` the error is divided by the mean square of ``b`` (treated as a constant),
    which makes the value comparable across layers and models whose activations differ in scale.

    Shape:
        any two alignable tensors -> scalar.
    """
    a, b = align_features(a.float(), b.float())
    err = F.mse_loss(a, b)
    if relative:
        err = err / (b.detach().pow(2).mean() + 1e-8)
    return err


def cosine(a: Tensor, b: Tensor) -> Tensor:
    """Mean cosine similarity between per-sample flattened tensors.

    Shape:
        ``(B, ...)`` and ``(B, ...)`` with the same number of elements per sample -> scalar.
    """
    return F.cosine_similarity(a.flatten(1).float(), b.flatten(1).float(), dim=1).mean()


def mse(a: Tensor, b: Tensor) -> Tensor:
    """Mean squared error per image.

    Shape:
        ``(B, ...)`` twice (``b`` may broadcast) -> ``(B,)`` (0-dim for one image).
    """
    return per_image((a.float() - b.float()).pow(2), a.shape[0])


def diffusion_loss(pred: Tensor, target: Tensor) -> Tensor:
    """The denoising training loss ``mean((pred - target)^2)`` in the model's parameterisation,
    per image.

    Shape:
        ``(B, F_lat, C_lat, h, w)`` twice -> ``(B,)`` (0-dim for one image).
    """
    return mse(pred, target)


def margin(value: Tensor, tau: float) -> Tensor:
    """Hinge ``max(0, tau - value)``: zero once ``value`` exceeds ``tau`` (a push-away term).

    Shape:
        any -> same.
    """
    return F.relu(tau - value)


def sds_surrogate(z: Tensor, residual: Tensor) -> Tensor:
    """Score-distillation surrogate whose gradient w.r.t. ``z`` is ``residual / numel``.

    ``0.5 * mean((z - sg(z - residual))^2)``: the denoiser Jacobian is skipped, as in SDS
    (DreamFusion) and the SDS protection baselines (Xue et al., arXiv 2311.12832).

    Shape:
        ``z`` and ``residual`` the same shape ``(B, ...)`` -> ``(B,)`` (0-dim for one image).
    """
    return 0.5 * mse(z, (z - residual).detach())
