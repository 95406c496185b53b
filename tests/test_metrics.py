"""Analytic tests of stillguard.measure.metrics (no models, no weights)."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from skimage.metrics import peak_signal_noise_ratio, structural_similarity

from stillguard.errors import InputError
from stillguard.measure import metrics, motion


def _texture(seed: int = 0, size: int = 96) -> torch.Tensor:
    """A smooth random RGB texture (3, size, size) in [0, 1]: trackable by optical flow."""
    g = torch.Generator().manual_seed(seed)
    base = torch.rand(1, 3, size // 4, size // 4, generator=g)
    return F.interpolate(base, size=(size, size), mode="bicubic", align_corners=False).clamp(0, 1)[
        0
    ]


def _shifted(k: int, frames: int = 9, seed: int = 0) -> torch.Tensor:
    """A 64x64 window sliding k px/frame to the right over the texture: content moves left by k."""
    canvas = _texture(seed)
    return torch.stack([canvas[:, 8:72, 4 + k * t : 68 + k * t] for t in range(frames)])


def _sk_ssim(a: torch.Tensor, b: torch.Tensor) -> float:
    return structural_similarity(
        a.permute(1, 2, 0).double().numpy(),
        b.permute(1, 2, 0).double().numpy(),
        channel_axis=-1,
        data_range=1.0,
        gaussian_weights=True,
        sigma=1.5,
        use_sample_covariance=False,
    )


@pytest.mark.parametrize("video", ["flat", "textured"])
def test_constant_video_has_zero_motion_and_dissimilarity(video: str) -> None:
    frame = torch.full((3, 64, 64), 0.4) if video == "flat" else _texture()[:, :64, :64]
    v = frame.expand(9, -1, -1, -1).unsqueeze(0)
    assert motion.flow_magnitude(v) == 0.0
    assert motion.temporal_dissimilarity(v) == pytest.approx(0.0, abs=1e-6)
    assert motion.temporal_dissimilarity(v, ref="first") == pytest.approx(0.0, abs=1e-6)
    assert motion.drift(v) == 0.0


@pytest.mark.parametrize("k", [1, 2, 3])
def test_shifted_texture_flow_equals_shift(k: int) -> None:
    v = _shifted(k)
    per = motion.per_frame_flow(v)
    assert per.shape == (8,)
    # tolerance: 5% of the shift (measured error is < 1%)
    assert motion.flow_magnitude(v) == pytest.approx(k, rel=0.05)
    assert np.all(np.abs(per - k) < 0.1 * k)
    diag = math.hypot(64, 64)
    assert motion.flow_magnitude(v, normalized=True) == pytest.approx(per.mean() / diag)


def test_flow_batch_shape_and_ordering() -> None:
    v = torch.stack([_shifted(1), _shifted(3)])
    per = motion.per_frame_flow(v)
    assert per.shape == (2, 8)
    assert per[1].mean() > 2 * per[0].mean()
    assert motion.temporal_dissimilarity(v[1:]) > motion.temporal_dissimilarity(v[:1])


def test_dissimilarity_first_grows_with_distance() -> None:
    v = _shifted(2)
    assert motion.temporal_dissimilarity(v, ref="first") > motion.temporal_dissimilarity(v)
    assert motion.drift(v) > 0


def test_ssim_and_psnr_agree_with_skimage() -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 3, 40, 52, generator=g)
    b = (a + 0.08 * torch.randn(a.shape, generator=g)).clamp(0, 1)
    s, p = metrics.ssim(a, b), metrics.psnr(a, b)
    assert s.shape == p.shape == (2,)
    for i in range(2):
        assert float(s[i]) == pytest.approx(_sk_ssim(a[i], b[i]), abs=1e-5)
        ref = peak_signal_noise_ratio(a[i].double().numpy(), b[i].double().numpy(), data_range=1.0)
        assert float(p[i]) == pytest.approx(ref, abs=1e-3)


def test_ssim_and_psnr_videos_frame_wise() -> None:
    v = _shifted(1, frames=4).unsqueeze(0)
    w = _shifted(2, frames=4).unsqueeze(0)
    s, p = metrics.ssim(v, w), metrics.psnr(v, w)
    assert s.shape == p.shape == (1, 4)
    assert float(s[0, 0]) == pytest.approx(1.0)  # frame 0 is the same crop
    assert math.isinf(float(p[0, 0]))
    assert float(s[0, 3]) == pytest.approx(_sk_ssim(v[0, 3], w[0, 3]), abs=1e-5)


def test_psnr_identical_is_inf_and_ssim_one() -> None:
    a = _texture()[None, :, :32, :32]
    assert math.isinf(float(metrics.psnr(a, a))) and float(metrics.psnr(a, a)) > 0
    assert float(metrics.ssim(a, a)) == pytest.approx(1.0, abs=1e-6)


def test_ssim_is_differentiable() -> None:
    a = _texture()[None, :, :32, :32]
    b = (a + 0.05).clamp(0, 1).requires_grad_(True)
    metrics.ssim(a, b).sum().backward()
    assert b.grad is not None and torch.isfinite(b.grad).all() and b.grad.abs().sum() > 0


def test_inputs_are_checked() -> None:
    v = _shifted(1)
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        motion.flow_magnitude(v * 255)
    with pytest.raises(InputError, match="at least 2 frames"):
        motion.flow_magnitude(v[:1])
    with pytest.raises(InputError, match="ref"):
        motion.temporal_dissimilarity(v, ref="last")
    with pytest.raises(InputError, match="same shape"):
        metrics.psnr(v[0:1], v[0:2])
    with pytest.raises(InputError, match="11x11"):
        metrics.ssim(v[:1, :, :8, :8], v[:1, :, :8, :8])


def test_image_and_video_fidelity() -> None:
    img = _texture()[None, :, :64, :64]
    frozen = img.unsqueeze(1).expand(1, 5, -1, -1, -1)
    fid = metrics.image_fidelity(frozen, img)
    assert math.isinf(fid["psnr_first"]) and fid["ssim_all"] == pytest.approx(1.0, abs=1e-6)
    big = F.interpolate(img, scale_factor=2, mode="bilinear", align_corners=False)
    assert metrics.image_fidelity(frozen, big)["ssim_first"] > 0.9  # resized to the video size
    moving = _shifted(2, frames=5).unsqueeze(0)
    still = moving[:, :1].expand(1, 5, -1, -1, -1)
    vf = metrics.video_fidelity(moving, still)
    assert len(vf["ssim_frames"]) == 5 and vf["ssim_frames"][-1] < vf["ssim_frames"][1] < 1.0
    assert metrics.video_fidelity(moving, moving)["ssim_mean"] == pytest.approx(1.0, abs=1e-6)


def test_imperceptibility_values_and_learned_hook() -> None:
    a = torch.full((1, 3, 32, 32), 0.5)
    b = a.clone()
    b[0, 1, 3, 4] += 8 / 255
    out = metrics.imperceptibility(a, b)
    assert out["linf_255"] == pytest.approx(8.0, abs=1e-3)
    assert out["l2"] == pytest.approx(8 / 255, abs=1e-6)
    assert out["psnr"] == pytest.approx(10 * math.log10(3 * 32 * 32 / (8 / 255) ** 2), abs=1e-2)
    assert out["lpips"] == metrics.NOT_AVAILABLE and out["dino"] == metrics.NOT_AVAILABLE
    metrics.register_learned_metric("lpips", lambda x, y: float((x - y).abs().sum()))
    try:
        assert metrics.imperceptibility(a, b)["lpips"] == pytest.approx(8 / 255, abs=1e-6)
    finally:
        metrics.LEARNED_METRICS.pop("lpips")
