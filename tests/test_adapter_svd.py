"""Stable Video Diffusion beyond the shared contract: the shipped real configurations (built without
weights) and ``from_config``.

Published figures checked here:
    * the video UNet: about 1.52e9 parameters (SVD, arXiv 2311.15127, "1.5B"; the SD 2.1 UNet with
      temporal layers, hub config ``unet/config.json``);
    * the image encoder: OpenCLIP ViT-H/14's image tower, 632.08e6 parameters
      (mlfoundations/open_clip ``docs/model_profile.csv``, column ``image_mparams``).
"""

from __future__ import annotations

import json

import pytest
import torch

from stillguard.adapters import ADAPTERS, config_folder, real_config
from stillguard.errors import StillguardError

SVD = ADAPTERS.get("svd")
REAL = {
    "stabilityai/stable-video-diffusion-img2vid-xt": ("svd-img2vid-xt", 25),
    "stabilityai/stable-video-diffusion-img2vid": ("svd-img2vid", 14),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("model", sorted(REAL))
def test_real_config_builds_on_meta_with_published_sizes(model):
    folder, frames = REAL[model]
    assert real_config("svd", model) == config_folder(folder)
    a = SVD.from_config(real_config("svd", model), device="meta", dtype=torch.float16)
    assert all(p.device.type == "meta" for p in a.pipe.unet.parameters())
    assert {p.dtype for p in a.pipe.unet.parameters()} == {torch.float16}
    assert _count(a.pipe.unet) == pytest.approx(1.52e9, rel=5e-3)
    assert _count(a.pipe.image_encoder) == pytest.approx(632.08e6, rel=1e-4)
    assert a.pipe.image_encoder.config.image_size == 224
    assert (a.height, a.width, a.num_frames) == (576, 1024, frames)
    assert a.latent_shape(1) == (1, frames, 4, 72, 128)
    assert not a.is_real and a.model_id == model
    for file in config_folder(folder).rglob("*.json"):
        assert json.loads(file.read_text())["_source"].startswith("https://"), file


def test_real_config_default_and_errors():
    assert real_config("svd") == config_folder("svd-img2vid-xt")
    with pytest.raises(StillguardError, match="stable-video-diffusion-img2vid-xt"):
        real_config("svd", "stabilityai/sv3d")
    with pytest.raises(StillguardError, match="motion_bucket_id"):
        SVD.from_config(real_config("svd"), device="meta", motion_bucket=3)


def test_from_config_random_weights_are_seeded(tiny_svd, tmp_path, image):
    tiny_svd.save_pretrained(str(tmp_path / "m"))
    a, b = SVD.from_config(tmp_path / "m", seed=1), SVD.from_config(tmp_path / "m", seed=1)
    c = SVD.from_config(tmp_path / "m", seed=2)
    assert not a.is_real and (a.height, a.num_frames) == (tiny_svd.height, tiny_svd.num_frames)
    g = torch.Generator().manual_seed(0)
    t, noise = a.sample_timesteps(1, g), torch.randn(a.latent_shape(1), generator=g)
    with torch.no_grad():
        pa, pb, pc = (m.denoise(image, t, noise).pred for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)
