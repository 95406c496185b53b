"""The shipped toy I2V model: synthetic data, export format, and that the shipped weights animate."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch

from stillguard.toy import build
from stillguard.toy.training import quality
from stillguard.toy.training.data import (
    CODE_COLOURS,
    SceneConfig,
    _camera_matrix,
    camera_video,
    make_scene,
    make_video,
    make_videos,
    scene_rng,
)

torch.set_num_threads(1)


@pytest.fixture(scope="module")
def train_stats():
    return quality.training_stats(seed=0, n=16)


# ------------------------------------------------------------------------------------- data
def test_data_is_seeded_and_streams_differ():
    a = make_video(scene_rng(0, 1, 5))
    b = make_video(scene_rng(0, 1, 5))
    c = make_video(scene_rng(0, 3, 5))  # held-out stream, same index
    assert a.dtype == np.uint8 and a.shape == (9, 64, 64, 3)
    assert np.array_equal(a, b)
    assert not np.array_equal(a, c)


def test_make_videos_layout_and_frame0():
    v = make_videos(0, 0, 0, 2)
    assert v.shape == (2, 9, 3, 64, 64) and v.dtype == torch.float32
    assert 0 <= float(v.min()) and float(v.max()) <= 1
    raw = make_video(scene_rng(0, 0, 1))
    assert torch.equal(v[1, 0], quality.u8_to_tensor(raw[0]))
    assert not torch.equal(v[1, 0], v[1, -1])  # it moves


@pytest.mark.parametrize("strength", [0.75, 1.0, 1.25])
def test_camera_never_leaves_the_canvas(strength):
    cfg = SceneConfig()
    corners = np.array(
        [[0, 0, 1], [cfg.width, 0, 1], [0, cfg.height, 1], [cfg.width, cfg.height, 1]]
    )
    for t in range(cfg.num_frames):
        pts = corners @ _camera_matrix(cfg, t, strength).T
        assert pts.min() >= 0.5
        assert pts[:, 0].max() <= cfg.width + 2 * cfg.margin - 1.5
        assert pts[:, 1].max() <= cfg.height + 2 * cfg.margin - 1.5


def test_camera_move_pans_content_left_and_zooms_in():
    cfg = SceneConfig()
    canvas = make_scene(scene_rng(0, 9, 0), cfg.height + 2 * cfg.margin, cfg.width + 2 * cfg.margin)
    v = quality.u8_to_tensor(camera_video(canvas.astype(np.uint8), cfg))
    dx, _ = quality.flow_vector(v, thresh=0.2)
    assert dx < -0.3  # the camera pans right, so the content moves left
    static = quality.u8_to_tensor(camera_video(canvas.astype(np.uint8), cfg, strength=0.0))
    assert torch.equal(static[0], static[-1])
    with pytest.raises(ValueError, match="canvas"):
        camera_video(np.zeros((64, 64, 3), np.uint8), cfg)


def test_objects_move_in_their_colour_direction():
    cfg = SceneConfig(pan=0.0, zoom=0.0, roll=0.0, p_no_object=0.0)
    checked = 0
    for i in range(40):
        v = make_video(scene_rng(7, 9, i), cfg)
        for name, rgb in CODE_COLOURS.items():
            mask = [np.all(np.abs(f.astype(int) - rgb) < 6, -1) for f in (v[0], v[-1])]
            if mask[0].sum() < 40 or mask[1].sum() < 40 or len(set(_colours_in(v[0]))) != 1:
                continue
            (y0, x0), (y1, x1) = (np.argwhere(m).mean(0) for m in mask)
            want = {
                "red": x1 > x0 + 8,
                "green": x1 < x0 - 8,
                "blue": y1 > y0 + 8,
                "yellow": y1 < y0 - 8,
            }
            assert want[name], (name, (x0, y0), (x1, y1))
            checked += 1
    assert checked >= 3


def _colours_in(frame: np.ndarray) -> list[str]:
    return [
        n
        for n, c in CODE_COLOURS.items()
        if np.all(np.abs(frame.astype(int) - c) < 6, -1).sum() > 20
    ]


# ----------------------------------------------------------------------------------- export
def test_export_roundtrip_fp16_and_defaults(tmp_path):
    torch.manual_seed(0)
    vae, tr = build.build_vae(), build.build_transformer()
    build.export(vae, tr, tmp_path, num_inference_steps=3)
    cfg = json.loads((tmp_path / "stillguard.json").read_text())
    assert cfg == {
        "height": 64,
        "width": 64,
        "num_frames": 9,
        "num_inference_steps": 3,
        "guidance_scale": 1.0,
    }
    from safetensors.torch import load_file

    w = load_file(str(next((tmp_path / "transformer").glob("*.safetensors"))))
    assert all(t.dtype == torch.float16 for t in w.values())
    size = sum(f.stat().st_size for f in tmp_path.rglob("*") if f.is_file())
    assert size < 20e6
    pipe, embeds, defaults = build.load_pipeline(tmp_path)
    assert embeds.shape == (1, 1, 16) and defaults["num_inference_steps"] == 3
    video = quality.generate(pipe, embeds, defaults, torch.rand(1, 3, 64, 64), seed=0)
    assert video.shape == (1, 9, 3, 64, 64)


# --------------------------------------------------------------------------- shipped weights
def test_animation_criteria_reject_frozen_and_noise_videos(train_stats):
    image, video = quality.synthetic_case(0, 0)
    ok = quality.video_stats(video, image)
    assert quality.animation_failures(ok, train_stats) == []  # a true training-like video passes
    frozen = image[:, None].expand_as(video).contiguous()
    assert any(
        "flow" in f
        for f in quality.animation_failures(quality.video_stats(frozen, image), train_stats)
    )
    noise = torch.rand(video.shape, generator=torch.Generator().manual_seed(0))
    fails = quality.animation_failures(quality.video_stats(noise, image), train_stats)
    assert any("PSNR" in f for f in fails) and any("flicker" in f for f in fails)


@pytest.fixture(scope="module")
def shipped():
    folder = build.weights_dir()
    assert (folder / "model_index.json").is_file(), (
        f"no shipped toy weights in {folder}: train them with python -m stillguard.toy.training.train"
    )
    return build.load_pipeline()


@pytest.mark.parametrize("case", ["synthetic", "photo"])
def test_shipped_model_animates_and_keeps_frame0(shipped, train_stats, case):
    pipe, embeds, defaults = shipped
    if case == "synthetic":
        image, _ = quality.synthetic_case(0, 1)  # held-out stream
    else:  # the bundled demo photo (never seen in training), at the model's 64x64
        from importlib.resources import files

        from PIL import Image

        with Image.open(str(files("stillguard") / "assets" / "sample.png")) as im:
            small = np.asarray(im.convert("RGB").resize((64, 64), Image.Resampling.LANCZOS))
        image = quality.u8_to_tensor(small)[None]
    video = quality.generate(pipe, embeds, defaults, image, seed=0)
    assert video.shape == (1, 9, 3, 64, 64)
    stats = quality.video_stats(video, image)
    assert quality.animation_failures(stats, train_stats) == [], stats
    from stillguard.measure.metrics import psnr

    per_frame = psnr(video[0], image.expand(9, -1, -1, -1))
    assert per_frame[0] > per_frame[-1] + 1.0, per_frame  # frame 0 is kept, later frames move on
    assert stats["psnr_first"] > quality.vae_ceiling(pipe, image) - 3.0  # as well as the VAE allows
    again = quality.generate(pipe, embeds, defaults, image, seed=0)
    assert torch.equal(video, again)  # same seed, same video


def test_adapter_loads_the_shipped_toy(shipped):
    from stillguard import load_adapter

    pipe, embeds, defaults = shipped
    adapter = load_adapter("cogvideox-i2v", model="toy")
    assert (adapter.height, adapter.width, adapter.num_frames) == (64, 64, 9)
    image = quality.u8_to_tensor(quality.photo("chelsea", 64))[None]
    video = adapter.generate(image, seed=3)
    plain = quality.generate(pipe, embeds, defaults, image, seed=3)
    assert video.shape == plain.shape == (1, 9, 3, 64, 64)
    assert math.isclose(float((video - plain).abs().max()), 0.0, abs_tol=1e-4)


# ------------------------------------------------------------------------------- training
@pytest.mark.slow
def test_training_runs_checkpoints_and_resumes(tmp_path):
    from stillguard.toy.training.train import main

    argv = ["--out", str(tmp_path), "--minutes-vae", "0.05", "--minutes-transformer", "0.05"]
    argv += ["--n-latents", "8", "--threads", "1", "--device", "cpu"]
    assert main(argv) == 0
    summary = json.loads((tmp_path / "train_summary.json").read_text())
    assert summary["transformer"]["step"] >= 1 and summary["seed"] == 0
    state = torch.load(tmp_path / "transformer_state.pt", weights_only=False)
    assert state["done"] and state["step"] >= 1
    assert main(argv + ["--resume", "--minutes-transformer", "0.1"]) == 0  # finished stages skipped
    again = torch.load(tmp_path / "transformer_state.pt", weights_only=False)
    assert again["step"] == state["step"]
    assert (tmp_path / "pipeline" / "model_index.json").is_file()
