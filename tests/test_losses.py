"""Analytic tests of the loss building blocks (no model involved)."""

from __future__ import annotations

import pytest
import torch

from stillguard import losses as L


def _softmax_maps(seed: int, shape: tuple[int, ...]) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return (3 * torch.randn(shape, generator=g)).softmax(-1)


def test_uniform_attention_is_the_minimum_of_the_frobenius_loss() -> None:
    k = 7
    uniform = torch.full((2, 3, 5, k), 1 / k)
    onehot = torch.nn.functional.one_hot(torch.arange(5) % k, k).float().expand(2, 3, 5, k)
    rand = _softmax_maps(0, (2, 3, 5, k))
    assert L.attention_frobenius([uniform]).item() == pytest.approx(1 / k)
    assert L.uniform_attention_floor([uniform]) == pytest.approx(1 / k)
    assert L.attention_frobenius([onehot]).item() == pytest.approx(1.0)
    value = L.attention_frobenius([rand]).item()
    assert 1 / k < value < 1.0


def test_frobenius_mean_over_maps_and_mixed_key_counts() -> None:
    a = torch.full((1, 1, 4, 4), 0.25)  # 1/4
    b = torch.full((1, 2, 3, 10), 0.1)  # 1/10
    assert L.attention_frobenius([a, b]).item() == pytest.approx((0.25 + 0.1) / 2)
    assert L.uniform_attention_floor([a, b]) == pytest.approx((0.25 + 0.1) / 2)
    with pytest.raises(ValueError):
        L.attention_frobenius([])


def test_descending_the_frobenius_loss_makes_attention_uniform() -> None:
    logits = torch.randn(1, 2, 6, 9, generator=torch.Generator().manual_seed(1)).mul(3)
    logits.requires_grad_(True)
    ent0 = L.attention_entropy([logits.softmax(-1)]).item()
    opt = torch.optim.Adam([logits], lr=0.1)
    for _ in range(200):
        opt.zero_grad()
        L.attention_frobenius([logits.softmax(-1)]).backward()
        opt.step()
    maps = [logits.softmax(-1)]
    excess = L.attention_frobenius(maps).item() - L.uniform_attention_floor(maps)
    assert excess < 1e-3
    assert L.attention_entropy(maps).item() > ent0
    assert L.attention_entropy(maps).item() == pytest.approx(
        torch.log(torch.tensor(9.0)).item(), abs=0.02
    )


def test_attention_divergence() -> None:
    a, b = _softmax_maps(2, (1, 2, 4, 5)), _softmax_maps(3, (1, 2, 4, 5))
    assert L.attention_divergence([a], [a.clone()]).item() == 0.0
    assert L.attention_divergence([a, b], [b, a]).item() == pytest.approx(
        ((a - b) ** 2).mean().item()
    )
    with pytest.raises(ValueError):
        L.attention_divergence([a], [a, b])


def test_align_features_shapes_and_constants() -> None:
    a, b = torch.randn(2, 8, 4, 4), torch.randn(2, 8, 4, 4)
    assert L.align_features(a, b)[0] is a
    big, small = torch.full((2, 8, 4, 4), 3.0), torch.randn(2, 12, 2, 6)
    x, y = L.align_features(big, small)
    assert x.shape == y.shape == (2, 4, 2, 4)
    assert torch.allclose(x, torch.full_like(x, 3.0))  # averaging keeps a constant
    tok_a, tok_b = torch.randn(1, 10, 6), torch.randn(1, 5, 4)
    x, y = L.align_features(tok_a, tok_b)
    assert x.shape == y.shape == (1, 5, 2)
    with pytest.raises(ValueError):
        L.align_features(torch.randn(2, 3, 4, 4), torch.randn(3, 3, 4, 4))


def test_feature_mse_relative_is_scale_free() -> None:
    a, b = torch.randn(2, 16, 8), torch.randn(2, 16, 8)
    plain = L.feature_mse(a, b).item()
    assert plain == pytest.approx(((a - b) ** 2).mean().item())
    rel = L.feature_mse(a, b, relative=True).item()
    assert L.feature_mse(100 * a, 100 * b, relative=True).item() == pytest.approx(rel, rel=1e-5)
    assert L.feature_mse(100 * a, 100 * b).item() == pytest.approx(1e4 * plain, rel=1e-5)


def test_cosine_margin_and_diffusion_loss() -> None:
    a = torch.randn(3, 5)
    assert L.cosine(a, a).item() == pytest.approx(1.0)
    assert L.cosine(a, -a).item() == pytest.approx(-1.0)
    assert L.margin(torch.tensor([0.2, 0.9]), 0.5).tolist() == pytest.approx([0.3, 0.0])
    p, t = torch.randn(1, 3, 4, 2, 2), torch.randn(1, 3, 4, 2, 2)
    assert L.diffusion_loss(p, t).item() == pytest.approx(((p - t) ** 2).mean().item())


def test_sds_surrogate_gradient_is_the_residual() -> None:
    z = torch.randn(2, 3, 4, requires_grad=True)
    residual = torch.randn(2, 3, 4)
    L.sds_surrogate(z, residual).sum().backward()  # one value per image
    assert torch.allclose(z.grad, residual / z[0].numel())
