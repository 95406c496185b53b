"""Robustness transforms: shapes, ranges, JPEG fidelity, gradients, labels, determinism, errors."""

from __future__ import annotations

import pytest
import torch

from stillguard.errors import InputError, StillguardError
from stillguard.plugins import TRANSFORMS
from stillguard.tensors import quantize8
from stillguard.transforms import (
    DEFAULT_PURIFICATIONS,
    Crop,
    Jpeg,
    Random,
    Resize,
    parse_transform,
)

SPECS = [
    *DEFAULT_PURIFICATIONS,
    "identity",
    "crop:3",
    "random",
    "noisy-upscale:noise=0.1,scale=0.25",
    "gaussian-noise:0.05",
    "bits:4",
]


def _gen(seed: int = 0) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def _smooth(h: int = 48, w: int = 64) -> torch.Tensor:
    yy, xx = torch.meshgrid(torch.linspace(0, 1, h), torch.linspace(0, 1, w), indexing="ij")
    img = torch.stack(
        [0.5 + 0.3 * torch.sin(6 * xx + 1), 0.5 + 0.3 * torch.cos(5 * yy), 0.3 + 0.4 * xx * yy]
    )
    return quantize8(img[None])


def _textured(h: int = 48, w: int = 64, seed: int = 0) -> torch.Tensor:
    """Smooth image plus 8-bit noise texture and an edge: something JPEG must lose detail on."""
    noise = torch.rand(1, 3, h, w, generator=_gen(seed)) - 0.5
    x = _smooth(h, w) + 0.15 * noise
    x[..., : h // 2, : w // 3] += 0.2
    return quantize8(x)


@pytest.mark.parametrize("spec", SPECS)
def test_shapes_range_and_gradient(spec):
    t = parse_transform(spec)
    x = torch.cat([_textured(), _textured(seed=1)])
    xr = x.clone().requires_grad_(True)
    y = t(xr, _gen())
    r = t.real(x)
    for out in (y, r):
        assert out.shape == x.shape and out.dtype == x.dtype
        assert out.min() >= 0 and out.max() <= 1
    assert torch.equal(r, quantize8(r))  # real() gives 8-bit levels
    (y * torch.linspace(-1, 1, x.numel()).view_as(x)).sum().backward()
    assert xr.grad is not None and xr.grad.abs().sum() > 0


def test_real_jpeg_quality_order():
    x = _textured()
    errs = {q: (Jpeg(q).real(x) - x).abs().mean().item() for q in (95, 75, 50)}
    assert 0 < errs[95] < errs[75] < errs[50]


def test_differentiable_jpeg_close_to_pillow():
    x = _textured(64, 64)
    for q in (95, 75, 50):
        t = Jpeg(q)
        diff = (t(x, _gen()) - t.real(x)).abs().mean().item()
        err = (t.real(x) - x).abs().mean().item()
        # measured about 1/3 of JPEG's own error (e.g. q=75: 1.9/255 vs 5.7/255 on a natural image)
        assert diff < 0.6 * err, (q, diff * 255, err * 255)


def test_blur_of_constant_is_constant():
    x = torch.full((1, 3, 20, 20), 0.4)
    for spec in ("blur:1.0", "blur:3"):
        t = parse_transform(spec)
        assert torch.allclose(t(x, _gen()), x, atol=1e-6)
        assert torch.allclose(t.real(x), quantize8(x))
    assert (parse_transform("blur:1").real(_textured()) - _textured()).abs().mean() > 1e-3


def test_resize_round_trip_of_smooth_image():
    x = _smooth()
    for scale in (0.5, 0.75):
        t = Resize(scale)
        assert (t(x, _gen()) - x).abs().mean() < 2 / 255
        assert (t.real(x) - x).abs().mean() < 2 / 255
    assert (Resize(0.5).real(_textured()) - _textured()).abs().mean() > 5 / 255


@pytest.mark.parametrize("spec", SPECS)
def test_label_round_trips(spec):
    t = parse_transform(spec)
    again = parse_transform(t.label)
    assert again == t and again.label == t.label
    assert TRANSFORMS.build(t.registry_name) == type(t)()


def test_labels_and_defaults():
    assert parse_transform("jpeg").label == "jpeg:75"
    assert parse_transform("blur:1").label == "blur:1.0"
    assert parse_transform("resize:0.75").label == "resize:0.75"
    assert parse_transform("identity").label == "identity"
    assert parse_transform("noisy-upscale") == parse_transform("noisy-upscale:0.05")
    assert parse_transform(" jpeg:50 ") == Jpeg(50)


@pytest.mark.parametrize("spec", ["crop:4", "noisy-upscale", "random", "jpeg:75"])
def test_determinism(spec):
    t = parse_transform(spec)
    x = torch.cat([_textured(), _textured(seed=2), _textured(seed=3)])
    assert torch.equal(t(x, _gen(5)), t(x, _gen(5)))
    assert torch.equal(t.real(x), t.real(x))
    if spec != "jpeg:75":
        assert not torch.equal(t(x, _gen(5)), t(x, _gen(6)))


def test_crop_shift_and_random_mixes():
    x = _textured()
    assert torch.equal(Crop(0)(x, _gen()), x)
    r = Crop(2).real(x)
    assert torch.equal(r[..., :-2, :-2], x[..., 2:, 2:])
    rnd = Random(choices=("identity", "blur:2.0"))
    batch = x.repeat(16, 1, 1, 1)
    out = rnd(batch, _gen())
    same = [(out[i] - x[0]).abs().max().item() < 1e-7 for i in range(16)]
    assert any(same) and not all(same)


@pytest.mark.parametrize(
    "spec, near",
    [("jpg", "jpeg"), ("blurr:1", "blur"), ("nosy-upscale", "noisy-upscale"), ("resise", "resize")],
)
def test_unknown_names_list_close_matches(spec, near):
    with pytest.raises(StillguardError, match=f"did you mean '{near}'"):
        parse_transform(spec)


@pytest.mark.parametrize(
    "spec",
    [
        "jpeg:0",
        "jpeg:101",
        "jpeg:7.5",
        "resize:2",
        "resize:0",
        "blur:-1",
        "blur:x",
        "crop:-1",
        "identity:3",
        "noisy-upscale:strength=2",
        "noisy-upscale:noise=0.1,0.5",
        "random:jpeg:75+random",
        "random:jpg",
        "",
    ],
)
def test_bad_values_raise(spec):
    with pytest.raises(StillguardError):
        parse_transform(spec)
    with pytest.raises(InputError):
        Jpeg(0)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("spec", SPECS)
def test_cuda_with_cpu_generator(spec):
    t = parse_transform(spec)
    x = torch.cat([_textured(), _textured(seed=1)])
    y = t(x.cuda(), _gen())
    assert y.device.type == "cuda" and y.shape == x.shape
    assert torch.allclose(y.cpu(), t(x, _gen()), atol=1e-4)
    assert torch.allclose(t.real(x.cuda()).cpu(), t.real(x), atol=1.5 / 255)
