"""The Dual-Space Perturbation's salient-pixel mask: budget concentrated where the mask is."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from stillguard.errors import InputError
from stillguard.plugins import SPACES
from stillguard.spaces._mask import face_available, mask_of, saliency

SAMPLE = Path(__file__).resolve().parents[1] / "src" / "stillguard" / "assets" / "sample.png"


def _square(size: int = 64) -> torch.Tensor:
    x = torch.full((1, 3, size, size), 0.5)
    x[..., 20:36, 24:40] = 1.0  # one bright patch on a flat background
    return x


def test_saliency_peaks_on_the_odd_patch() -> None:
    m = saliency(_square())
    assert m.shape == (1, 1, 64, 64) and float(m.min()) >= 0 and float(m.max()) <= 1
    assert float(m[..., 20:36, 24:40].mean()) > 2 * float(m[..., 48:, :16].mean())


@pytest.mark.parametrize("mask", ["saliency", "file"])
def test_the_budget_follows_the_mask(mask, tmp_path) -> None:
    from PIL import Image

    x = _square()
    spec = mask
    if mask == "file":
        img = torch.zeros(64, 64, dtype=torch.uint8)
        img[:, :32] = 255  # the left half is salient
        Image.fromarray(img.numpy()).save(tmp_path / "m.png")
        spec = str(tmp_path / "m.png")
    sp = SPACES.build("dual", eps=8 / 255, mask=spec, mask_floor=0.25)
    g = torch.Generator().manual_seed(0)
    p = sp.init(x, g, True)
    for it in range(6):
        p = sp.project(x, sp.step(p, torch.randn(p.shape, generator=g), 0.5, it))
    d = (sp.to_image(x, p) - x).abs()
    w = sp.weight(x)
    assert bool((d <= w * 8 / 255 + 1e-6).all())
    if mask == "file":
        assert float(d[..., 32:].max()) <= 0.25 * 8 / 255 + 1e-6
        assert float(d[..., :32].max()) > 0.5 * 8 / 255
    assert sp.weight(x) is w  # computed once per image
    assert sp.describe()["mask"] == spec


def test_bad_masks_are_refused() -> None:
    with pytest.raises(InputError):
        SPACES.build("dual", mask="eyes")
    with pytest.raises(InputError):
        SPACES.build("dual", mask="saliency", mask_floor=1.5)


def test_the_face_mask_says_why_it_cannot_run_or_finds_the_face() -> None:
    from stillguard.images import load_image

    x = load_image(SAMPLE, min_side=1).tensor
    why = face_available()
    if why is not None:
        with pytest.raises(InputError, match="cannot run"):
            mask_of("face", x)
        return
    m = mask_of("face", x)  # the astronaut's face is in the upper middle of the demo photo
    assert m.shape == (1, 1, *x.shape[-2:]) and float(m.max()) == 1.0
    assert 0.02 < float(m.mean()) < 0.5
