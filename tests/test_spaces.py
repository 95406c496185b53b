"""Perturbation spaces: round trip, RGB box, gradients, step sign, Lab L*, DCT mask, determinism."""

from __future__ import annotations

import json

import pytest
import torch
from kornia.color import rgb_to_lab

from stillguard.errors import InputError, StillguardError
from stillguard.plugins import SPACES
from stillguard.spaces import Dct, Dual, Lab, Rgb, block_dct, dct_matrix

EPS = 8 / 255
ALL = ["rgb", "lab", "dct", "dual"]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _image(
    h: int = 16, w: int = 16, lo: float = 0.0, hi: float = 1.0, seed: int = 1
) -> torch.Tensor:
    x = torch.rand(2, 3, h, w, generator=_gen(seed), dtype=torch.float64)
    return lo + (hi - lo) * x


def _random_walk(space, x: torch.Tensor, steps: int = 12, frac: float = 0.5) -> torch.Tensor:
    g = _gen(3)
    p = space.init(x, g, True)
    for it in range(steps):
        grad = torch.randn(p.shape, generator=g, dtype=p.dtype)
        p = space.project(x, space.step(p, grad, frac, it))
    return p


def _raw(space, x: torch.Tensor, p: torch.Tensor) -> torch.Tensor:
    """Unclipped perturbed image."""
    if isinstance(space, Rgb):
        return x + p
    if isinstance(space, Dual):
        lab, dct = space.split(x, p)
        return x + space.lab.delta(x, lab) + space.dct.delta(x, dct)
    return x + space.delta(x, p)


def test_registry_and_describe():
    assert set(ALL) <= set(SPACES.names())
    for name in ALL:
        space = SPACES.build(name, eps=4 / 255)
        d = space.describe()
        assert d["name"] == name and d["eps"] == pytest.approx(4 / 255)
        assert json.loads(json.dumps(d)) == d
    assert Lab().describe()["eps_ab"] == pytest.approx(128 * EPS)
    assert Dct().describe()["eps_coef"] == pytest.approx(8 * EPS)


@pytest.mark.parametrize("name", ALL)
def test_zero_param_round_trip(name):
    space = SPACES.build(name)
    x = _image()
    p = space.init(x, _gen(), False)
    assert p.abs().max() == 0 and not p.requires_grad
    assert (space.to_image(x, p) - x).abs().max() < 1e-4


@pytest.mark.parametrize("name", ALL)
@pytest.mark.parametrize("size", [(16, 16), (13, 10)])
def test_box_after_random_steps(name, size):
    space = SPACES.build(name)
    x = _image(*size)
    x[:, :, 0, 0] = 0.0  # saturated pixels must stay in [0, 1]
    x[:, :, -1, -1] = 1.0
    p = _random_walk(space, x)
    y = space.to_image(x, p)
    assert y.shape == x.shape
    assert (y - x).abs().max() <= EPS + 1e-6
    assert y.min() >= 0 and y.max() <= 1
    assert (y - x).abs().max() > 0.5 * EPS  # it did move


def test_own_budgets_after_projection():
    x = _image()
    lab = Lab()
    assert _random_walk(lab, x).abs().max() <= lab.eps_ab + 1e-9
    dct = Dct()
    p = _random_walk(dct, x)
    assert p.abs().max() <= dct.eps_coef + 1e-9
    outside = 1 - dct.mask(*p.shape[-2:], p.dtype, p.device)
    assert (p * outside).abs().max() == 0


def test_projection_keeps_lab_and_dct_parts_inside_box():
    x = _image(lo=0.1, hi=0.9)
    for space in (Lab(), Dct(), Dct(block=None, keep=6)):
        p = _random_walk(space, x)
        assert (_raw(space, x, p) - x).abs().max() <= EPS * 1.01


@pytest.mark.parametrize("name", ALL)
def test_gradcheck(name):
    space = SPACES.build(name)
    x = _image(8, 8, lo=0.2, hi=0.8)[:1]
    p0 = space.init(x, _gen(5), True) * 0.3  # inside the box: no clamp kink nearby
    p = p0.clone().requires_grad_(True)
    assert torch.autograd.gradcheck(lambda q: space.to_image(x, q), (p,), eps=1e-6, atol=1e-5)


@pytest.mark.parametrize("name", ALL)
def test_step_descends_a_linear_loss(name):
    space = SPACES.build(name)
    x = _image(lo=0.2, hi=0.8)
    w = torch.randn(x.shape, generator=_gen(7), dtype=x.dtype)
    p = space.init(x, _gen(), False)
    losses = []
    for it in range(4):
        q = p.clone().requires_grad_(True)
        loss = (w * space.to_image(x, q)).sum()
        (grad,) = torch.autograd.grad(loss, q)
        losses.append(loss.item())
        p = space.project(x, space.step(q.detach(), grad, 0.25, it))
    losses.append((w * space.to_image(x, p)).sum().item())
    # strictly down at first; later a sign step may hit the projection's fixed point
    assert losses[1] < losses[0] - 1e-6, losses
    assert all(b <= a + 1e-9 for a, b in zip(losses[:-1], losses[1:], strict=True)), losses


def test_step_is_sign_descent_of_own_unit():
    grad = torch.tensor([[-2.0, 0.0, 3.0]])
    p = torch.zeros(1, 3)
    assert torch.equal(Rgb().step(p, grad, 0.5, 0), torch.tensor([[0.5, 0.0, -0.5]]) * EPS)
    assert torch.allclose(Lab(eps_ab=2.0).step(p, grad, 0.5, 0), torch.tensor([[1.0, 0, -1.0]]))


def test_lab_leaves_lightness_unchanged():
    x = _image(lo=0.15, hi=0.85)
    for channels, changes_l in ((("a", "b"), False), (("L", "a", "b"), True)):
        space = Lab(channels=channels)
        p = _random_walk(space, x)
        y = space.to_image(x, p)
        raw = _raw(space, x, p)
        unclipped = ((raw - y).abs() < 1e-12).all(dim=1)
        assert unclipped.float().mean() > 0.5
        lab_x = rgb_to_lab(x)
        for img, where in ((raw, torch.ones_like(unclipped)), (y, unclipped)):
            dl = (rgb_to_lab(img)[:, 0] - lab_x[:, 0]).abs()[where]
            dab = (rgb_to_lab(img)[:, 1:] - lab_x[:, 1:]).abs().amax(dim=1)[where]
            assert dab.max() > 1.0
            if changes_l:
                assert dl.max() > 0.1  # the measurement can see an L* change
            else:
                assert dl.max() < 1e-6


@pytest.mark.parametrize(
    "space", [Dct(), Dct(color="ycbcr"), Dct(block=None, keep=5), Dct(block=4, keep=2)]
)
def test_dct_change_stays_in_mask(space):
    x = _image(16, 16, lo=0.3, hi=0.7)  # interior: the [0, 1] clip never acts
    p = _random_walk(space, x)
    d = space.to_image(x, p) - x
    hp, wp, bh, bw = space._sizes(16, 16)
    coef = block_dct(d, bh, bw)
    mask = space.mask(hp, wp, d.dtype, d.device)
    assert (coef * (1 - mask)).pow(2).sum() < 1e-20 * coef.pow(2).sum() + 1e-24
    assert (coef * mask).pow(2).sum() > 0


def test_dct_matrix_is_orthonormal_and_block_dct_inverts():
    d = dct_matrix(8, torch.float64)
    assert torch.allclose(d @ d.T, torch.eye(8, dtype=torch.float64), atol=1e-12)
    x = _image(16, 24)
    assert torch.allclose(block_dct(block_dct(x, 8, 8), 8, 8, inverse=True), x, atol=1e-12)
    const = torch.full((1, 1, 8, 8), 0.5, dtype=torch.float64)
    c = block_dct(const, 8, 8)
    assert c[0, 0, 0, 0] == pytest.approx(4.0) and c.flatten()[1:].abs().max() < 1e-12


def test_dual_alternates_lab_and_dct():
    space = Dual()
    x = _image()
    p = space.init(x, _gen(), True)
    grad = torch.ones_like(p)
    n = len(space.channels)
    even, odd = space.step(p, grad, 0.5, 0), space.step(p, grad, 0.5, 1)
    assert (even[:, :n] != p[:, :n]).any() and torch.equal(even[:, n:], p[:, n:])
    assert (odd[:, n:] != p[:, n:]).any() and torch.equal(odd[:, :n], p[:, :n])
    joint = Dual(schedule="joint").step(p, grad, 0.5, 0)
    assert (joint[:, :n] != p[:, :n]).any() and (joint[:, n:] != p[:, n:]).any()


@pytest.mark.parametrize("name", ALL)
def test_determinism(name):
    space = SPACES.build(name)
    x = _image()
    a = space.to_image(x, _random_walk(space, x))
    b = space.to_image(x, _random_walk(space, x))
    assert torch.equal(a, b)
    s1, s2 = space.init(x, _gen(11), True), space.init(x, _gen(12), True)
    assert torch.equal(s1, space.init(x, _gen(11), True)) and not torch.equal(s1, s2)


def test_float32_and_bad_options():
    x = _image().float()
    for name in ALL:
        space = SPACES.build(name)
        y = space.to_image(x, space.init(x, _gen(), True))
        assert y.dtype == torch.float32 and (y - x).abs().max() <= EPS + 1e-6
    with pytest.raises(InputError):
        Lab(channels=("a", "z"))
    with pytest.raises(InputError):
        Dct(keep=0)
    with pytest.raises(InputError):
        Dual(schedule="sometimes")
    with pytest.raises(InputError):
        Rgb(eps=8.0)
    with pytest.raises(StillguardError, match="dct"):
        SPACES.get("dtc")


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ALL)
def test_cuda_with_cpu_generator_matches_cpu(name):
    space = SPACES.build(name)
    x = _image()
    cpu = space.to_image(x, space.init(x, _gen(), True))
    xg = x.cuda()
    pg = space.init(xg, _gen(), True)
    assert pg.device == xg.device
    gpu = space.to_image(xg, space.project(xg, space.step(pg, torch.ones_like(pg), 0.1, 0)))
    assert (gpu - xg).abs().max() <= EPS + 1e-6
    assert torch.allclose(space.to_image(xg, pg).cpu(), cpu, atol=1e-6)
