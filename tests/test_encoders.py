"""Learned encoders: each tiny model saved to a folder and loaded back through the real loader.

Tolerances: a save/load round trip of float32 safetensors is exact in principle, but the comparison
allows 1e-5 (kernels may differ between two module instances); gradients only need to be non-zero
and finite (they prove the preprocessing is differentiable, not a value).
"""

from __future__ import annotations

import pytest
import torch

from stillguard.encoders import ENCODERS, ArcFace, ClipImage, DinoImage, Lpips, QAlign
from stillguard.encoders.lpips import LpipsNet, convert_official
from stillguard.errors import InputError, ModelError


def _images(b: int = 2, h: int = 40, w: int = 36, seed: int = 0) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    return torch.rand(b, 3, h, w, generator=g)


def _call(enc, x):
    return enc(x, x.flip(-1)) if isinstance(enc, Lpips) else enc(x)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_tiny_round_trip_through_the_real_loader(name, tmp_path):
    cls = ENCODERS[name]
    enc = cls.tiny(seed=0)
    enc.save(tmp_path / name)
    assert list((tmp_path / name).glob("*.safetensors"))
    loaded = cls.from_folder(tmp_path / name)
    x = _images()
    a, b = _call(enc, x), _call(loaded, x)
    assert a.shape == b.shape and a.shape[0] == 2
    assert torch.allclose(a, b, atol=1e-5)
    other = cls.tiny(seed=1)  # different weights give different outputs: the load mattered
    assert not torch.allclose(_call(other, x), b, atol=1e-4)


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_differentiable_in_the_image(name):
    enc = ENCODERS[name].tiny()
    x = _images(1).requires_grad_(True)
    out = _call(enc, x)
    # a random direction: a plain sum of a LayerNorm output (DINO's CLS) is constant in the input
    (out * torch.randn(out.shape, generator=torch.Generator().manual_seed(0))).sum().backward()
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_missing_folder_names_the_option(name, monkeypatch, tmp_path):
    monkeypatch.delenv(f"STILLGUARD_{name.upper()}", raising=False)
    with pytest.raises(ModelError, match=f"--{name} DIR .*STILLGUARD_{name.upper()}"):
        ENCODERS[name].from_folder(None)
    with pytest.raises(ModelError, match=f"--{name} .*not a folder"):
        ENCODERS[name].from_folder(tmp_path / "nope")


@pytest.mark.parametrize("name", sorted(ENCODERS))
def test_pickle_only_folder_is_refused(name, tmp_path):
    (tmp_path / "pytorch_model.bin").write_bytes(b"\x80\x02}q\x00.")
    with pytest.raises(ModelError, match=f"--{name} .*pickles only"):
        ENCODERS[name].from_folder(tmp_path)


def test_environment_variable_supplies_the_folder(monkeypatch, tmp_path):
    Lpips.tiny().save(tmp_path / "lp")
    monkeypatch.setenv("STILLGUARD_LPIPS", str(tmp_path / "lp"))
    x = _images(1)
    assert float(Lpips.from_folder()(x, x)) == pytest.approx(0.0, abs=1e-6)


def test_lpips_is_a_distance():
    lp = Lpips.tiny()
    x = _images(1)
    y = (x + 0.2 * torch.randn_like(x)).clamp(0, 1)
    d_xy, d_yx = float(lp(x, y)), float(lp(y, x))
    assert float(lp(x, x)) == pytest.approx(0.0, abs=1e-6)
    assert d_xy > 0 and d_xy == pytest.approx(d_yx, rel=1e-5)
    near = (x + 0.02 * torch.randn_like(x)).clamp(0, 1)
    assert float(lp(x, near)) < d_xy  # a smaller change is a smaller distance
    with pytest.raises(InputError, match="one size"):
        lp(x, _images(1, 32, 32))


@pytest.mark.parametrize("net", ["vgg", "alex"])
def test_lpips_converts_the_official_layouts(net):
    full = LpipsNet(net)
    ours = full.state_dict()
    # the lpips package's LPIPS state dict: net.slice{n}.{i}.* (torchvision indices) + lin heads
    slices = {1: range(0, 4), 2: range(4, 9), 3: range(9, 16), 4: range(16, 23), 5: range(23, 30)}
    if net == "alex":
        slices = {1: range(0, 2), 2: range(2, 5), 3: range(5, 8), 4: range(8, 10), 5: range(10, 12)}
    official = {}
    for key, value in ours.items():
        if key.startswith("features."):
            i = int(key.split(".")[1])
            n = next(s for s, r in slices.items() if i in r)
            official[f"net.slice{n}.{key.split('.', 1)[1]}"] = value
        else:
            official[f"{key.split('.')[0]}.model.1.weight"] = value
    official["scaling_layer.shift"] = torch.zeros(1, 3, 1, 1)  # ignored: ours are constants
    converted = convert_official(official)
    assert converted.keys() == ours.keys()
    # torchvision trunk + separate head file
    tv = {k: v for k, v in ours.items() if k.startswith("features.")}
    heads = {f"lin{k}.model.1.weight": ours[f"lin{k}.weight"] for k in range(5)}
    assert convert_official(tv, heads).keys() == ours.keys()


def test_arcface_keys_follow_insightface_iresnet50():
    from stillguard.encoders.arcface import IResNet

    keys = set(IResNet().state_dict())
    for k in ("conv1.weight", "bn1.running_mean", "prelu.weight", "layer1.0.bn1.weight",
              "layer1.0.downsample.0.weight", "layer1.0.downsample.1.weight", "layer3.13.conv2.weight",
              "layer4.2.bn3.weight", "bn2.weight", "fc.weight", "features.weight"):  # fmt: skip
        assert k in keys, k
    assert "layer3.14.conv1.weight" not in keys  # iresnet50: 3, 4, 14, 3 blocks
    params = sum(p.numel() for p in IResNet().parameters())
    assert 43e6 < params < 44e6  # iresnet50 has about 43.6 M parameters


def test_arcface_mismatched_weights_are_one_line(tmp_path):
    ArcFace.tiny().save(tmp_path / "a")
    (tmp_path / "a" / "config.json").write_text(
        '{"layers": [2, 1, 1, 1], "widths": [8, 8, 16, 16], "num_features": 32}'
    )
    with pytest.raises(ModelError, match="--arcface .*do not match"):
        ArcFace.from_folder(tmp_path / "a")


def test_dino_v1_layout_and_wrong_model_type(tmp_path):
    DinoImage.tiny(family="vit").save(tmp_path / "v1")
    assert DinoImage.from_folder(tmp_path / "v1")(_images(1)).shape == (1, 32)
    ClipImage.tiny().save(tmp_path / "clip")
    with pytest.raises(ModelError, match="--dino .*model_type"):
        DinoImage.from_folder(tmp_path / "clip")


def test_clip_similarity_of_an_image_with_itself_is_one():
    clip = ClipImage.tiny()
    x = _images(2)
    assert torch.allclose(clip.similarity(x, x), torch.ones(2), atol=1e-5)


def test_qalign_scores_in_unit_range_and_wants_llava(tmp_path):
    q = QAlign.tiny()
    probs = q.level_probs(_images(2))
    assert probs.shape == (2, 5) and torch.allclose(probs.sum(-1), torch.ones(2), atol=1e-5)
    s = q(_images(2))
    assert ((s >= 0) & (s <= 1)).all()
    ClipImage.tiny().save(tmp_path / "clip")
    with pytest.raises(ModelError, match="--qalign .*llava"):
        QAlign.from_folder(tmp_path / "clip")
