"""Purification attacks: the short names, the new transforms, DiffPure on a tiny random UNet."""

from __future__ import annotations

import pytest
import torch

from stillguard.errors import InputError, ModelError
from stillguard.tensors import quantize8
from stillguard.transforms import ATTACKS, Bits, DiffPure, GaussianNoise, attack_label, parse_attack


def _img(seed: int = 0, h: int = 40, w: int = 48) -> torch.Tensor:
    g = torch.Generator().manual_seed(seed)
    low = torch.rand(1, 3, h // 8, w // 8, generator=g)
    return quantize8(torch.nn.functional.interpolate(low, size=(h, w), mode="bilinear"))


@pytest.mark.parametrize("name", [n for n in ATTACKS if n != "diffpure"])
def test_every_short_name_is_an_exact_8bit_purification(name):
    t = parse_attack(name)
    x = _img()
    y = t.real(x)
    assert y.shape == x.shape and torch.equal(y, quantize8(y))
    assert torch.equal(y, t.real(x))  # deterministic: an attacker's fixed tool
    if name != "none":
        assert (y - x).abs().max() > 0  # it changed something
    else:
        assert torch.equal(y, x)


def test_labels_say_what_is_a_stand_in():
    assert attack_label("noisy-upscale") == "noisy-upscale (bicubic stand-in)"
    assert attack_label("jpeg75") == "jpeg75"
    assert parse_attack("jpeg:60").label == "jpeg:60"  # any spec string works too
    with pytest.raises(Exception, match="did you mean"):
        parse_attack("jpge")


def test_gaussian_noise_has_its_sigma():
    x = torch.full((1, 3, 64, 64), 0.5)
    y = GaussianNoise(0.05).real(x)
    assert float((y - x).std()) == pytest.approx(0.05, rel=0.1)
    with pytest.raises(InputError):
        GaussianNoise(0.0)


def test_bits_keep_the_levels_and_pass_gradients():
    x = _img()
    y = Bits(3).real(x)
    assert len(torch.unique(y)) <= 8  # 3 bits: 8 levels, each k/7 rounded to 8 bits
    assert torch.allclose(y * 7, torch.round(y * 7), atol=4 / 255)
    xr = x.clone().requires_grad_(True)
    Bits(3)(xr, torch.Generator()).sum().backward()
    assert torch.equal(xr.grad, torch.ones_like(x))  # straight-through
    with pytest.raises(InputError):
        Bits(8)


@pytest.fixture(scope="module")
def ddpm_folder(tmp_path_factory):
    from diffusers import DDPMPipeline, DDPMScheduler, UNet2DModel

    torch.manual_seed(0)
    unet = UNet2DModel(sample_size=32, in_channels=3, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D",) * 2,
                       up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)  # fmt: skip
    folder = tmp_path_factory.mktemp("ddpm")
    DDPMPipeline(unet=unet, scheduler=DDPMScheduler()).save_pretrained(folder)
    return folder


def test_diffpure_on_a_tiny_random_unet(ddpm_folder):
    x = _img()
    small, large = (
        DiffPure(model=str(ddpm_folder), t=0.05, steps=2),
        DiffPure(model=str(ddpm_folder), t=0.5, steps=2),
    )
    y = small.real(x)
    assert y.shape == x.shape and torch.equal(y, quantize8(y)) and torch.equal(y, small.real(x))
    # more noise before denoising moves the image further (a random UNet cannot restore it)
    assert (large.real(x) - x).abs().mean() > (y - x).abs().mean()
    xr = x.clone().requires_grad_(True)
    small(xr, torch.Generator().manual_seed(0)).sum().backward()
    assert xr.grad is not None and xr.grad.abs().sum() > 0  # usable for EOT
    assert parse_attack(f"diffpure:model={ddpm_folder},t=0.05,steps=2") == small


def test_diffpure_needs_a_folder(monkeypatch, tmp_path):
    monkeypatch.delenv("STILLGUARD_DIFFPURE", raising=False)
    with pytest.raises(InputError, match="diffpure:model=DIR"):
        parse_attack("diffpure")
    (tmp_path / "unet").mkdir()
    (tmp_path / "unet" / "diffusion_pytorch_model.bin").write_bytes(b"x")
    with pytest.raises(ModelError, match="safetensors"):
        DiffPure(model=str(tmp_path)).real(_img())


@pytest.fixture(scope="module")
def upscaler_folder(tmp_path_factory):
    from diffusers import DDIMScheduler, LDMSuperResolutionPipeline, UNet2DModel, VQModel

    torch.manual_seed(0)
    vq = VQModel(in_channels=3, out_channels=3, latent_channels=3, block_out_channels=(8, 8, 8),
                 down_block_types=("DownEncoderBlock2D",) * 3, up_block_types=("UpDecoderBlock2D",) * 3,
                 norm_num_groups=4, num_vq_embeddings=16, layers_per_block=1)  # fmt: skip
    unet = UNet2DModel(sample_size=16, in_channels=6, out_channels=3, layers_per_block=1,
                       block_out_channels=(8, 16), down_block_types=("DownBlock2D",) * 2,
                       up_block_types=("UpBlock2D",) * 2, norm_num_groups=4)  # fmt: skip
    folder = tmp_path_factory.mktemp("ldmsr")
    LDMSuperResolutionPipeline(vqvae=vq, unet=unet, scheduler=DDIMScheduler()).save_pretrained(
        folder
    )
    return folder


def test_noisy_upscale_with_a_tiny_upscaler(upscaler_folder):
    spec = f"noisy-upscale:upscaler={upscaler_folder},steps=2"
    t = parse_attack(spec)
    x = _img(h=48, w=40)
    y = t.real(x)
    assert y.shape == x.shape and torch.equal(y, quantize8(y)) and torch.equal(y, t.real(x))
    assert not torch.equal(y, parse_attack("noisy-upscale").real(x))  # not the bicubic stand-in
    assert attack_label(spec) == spec  # no "stand-in" caveat
    with pytest.raises(InputError, match="purification only"):
        t(x, torch.Generator())
