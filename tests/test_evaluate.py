"""evaluate(), verdict() and Report: a scripted fake adapter for exact expectations, then tiny_cog."""

from __future__ import annotations

import json
import math

import pytest
import torch
import torch.nn.functional as F
from helpers import FakeAdapter, Wipe, mark, photo
from PIL import Image

from stillguard.errors import InputError
from stillguard.measure import evaluate as ev
from stillguard.measure import verdict as V
from stillguard.tensors import quantize8

EPS = 8 / 255


def _run(mode: str = "freeze", **kw):
    adapter = FakeAdapter(mode)
    img = photo()
    kw.setdefault("seeds", (0, 1))
    kw.setdefault("transforms", ("identity", Wipe()))
    return adapter, ev.evaluate(img, mark(img), adapter, **kw)


def test_frozen_protection_and_purification_are_told_apart() -> None:
    events: list[dict] = []
    adapter, rep = _run(callback=events.append)
    assert rep.verdicts == {"identity": "frozen", "wipe": "not protected"}
    by = {(s["transform"], s["subject"]): s for s in rep.summary}
    assert by[("identity", "protected")]["motion_ratio"] == 0.0
    assert by[("identity", "protected")]["dissim_ratio"] == pytest.approx(0.0, abs=1e-6)
    assert by[("wipe", "protected")]["motion_ratio"] == pytest.approx(1.0, rel=0.05)
    assert by[("identity", "noise")]["verdict"] == "not protected"
    # clean video once per seed, then protected + noise per transform
    assert len(adapter.calls) == 2 * (1 + 2 * 2) == len(events)
    assert adapter.calls.count(0) == adapter.calls.count(1)
    assert events[-1]["done"] == events[-1]["total"] == 10
    assert len(rep.rows) == 2 * 2 * 2
    keys = set(ev.PAIR_KEYS) | set(ev.VIDEO_KEYS) | {f"clean_{k}" for k in ev.VIDEO_KEYS}
    assert all(keys <= set(r) for r in rep.rows)
    assert set(rep.videos) == {"clean", "protected", "noise"}
    assert rep.videos["protected"].shape == (1, 6, 3, 48, 48)


def test_seed_changes_motion_and_std_is_reported() -> None:
    _, rep = _run(transforms=("identity",))
    clean = {r["seed"]: r["clean_flow"] for r in rep.rows if r["subject"] == "protected"}
    assert clean[1] > 1.5 * clean[0]  # the fake moves 1 px/frame at seed 0, 2 at seed 1
    s = rep.summary[0]
    assert s["seeds"] == 2 and s["clean_flow_std"] > 0
    assert s["clean_flow"] == pytest.approx((clean[0] + clean[1]) / 2)


def test_degraded_verdict() -> None:
    _, rep = _run("degrade", seeds=(0,))
    assert rep.verdicts["identity"] == "degraded"
    row = next(
        s for s in rep.summary if s["transform"] == "identity" and s["subject"] == "protected"
    )
    assert row["video_ssim"] <= V.DEGRADED_VIDEO_SSIM
    assert rep.verdicts["wipe"] == "not protected"


def test_noise_baseline_is_8bit_within_budget_and_seeded() -> None:
    img = quantize8(photo())
    a, b = ev.noise_image(img, EPS, 0), ev.noise_image(img, EPS, 0)
    assert torch.equal(a, b) and not torch.equal(a, ev.noise_image(img, EPS, 1))
    assert (a - img).abs().max() <= 8 / 255 + 1e-6
    assert (a - img).abs().max() >= 7 / 255  # it uses the budget
    assert torch.equal(a, (a * 255).round() / 255)
    _, rep = _run(noise_baseline=False, seeds=(0,))
    assert {r["subject"] for r in rep.rows} == {"protected"} and "noise" not in rep.images


def test_inputs_are_quantised_and_paths_accepted(tmp_path) -> None:
    img = photo()
    prot = mark(img)
    paths = []
    for name, x in (("o.png", img), ("p.png", prot)):
        arr = (x[0].permute(1, 2, 0) * 255).round().byte().numpy()
        Image.fromarray(arr).save(tmp_path / name)
        paths.append(tmp_path / name)
    a = ev.evaluate(img, prot, FakeAdapter(), seeds=(0,), transforms=("identity",))
    b = ev.evaluate(*paths, FakeAdapter(), seeds=(0,), transforms=("identity",))
    assert a.to_json() == b.to_json()
    assert torch.equal(a.images["original"], (img * 255).round() / 255)
    with pytest.raises(InputError, match="differ in size"):
        ev.evaluate(img, prot[..., :40], FakeAdapter(), seeds=(0,), transforms=("identity",))
    with pytest.raises(InputError, match=r"\[0, 1\]"):
        ev.evaluate(img * 255, prot, FakeAdapter(), seeds=(0,), transforms=("identity",))


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        ({"motion_ratio": 0.25, "dissim_ratio": 0.25, "video_ssim": 0.9}, "frozen"),
        ({"motion_ratio": 0.26, "dissim_ratio": 0.1, "video_ssim": 0.9}, "not protected"),
        ({"motion_ratio": 0.1, "dissim_ratio": 0.3, "video_ssim": 0.9}, "not protected"),
        ({"motion_ratio": 0.9, "dissim_ratio": 0.9, "video_ssim": 0.5}, "degraded"),
        ({"motion_ratio": 0.9, "video_ssim": 0.9, "fidelity_drop": 0.5}, "degraded"),
        ({"motion_ratio": 0.9, "video_ssim": 0.51, "fidelity_drop": 0.49}, "not protected"),
        (
            {"motion_ratio": math.nan, "dissim_ratio": math.nan, "video_ssim": math.nan},
            "not protected",
        ),
        ({"motion_ratio": 0.1, "dissim_ratio": None}, "not protected"),
    ],
)
def test_verdict_thresholds(row: dict, expected: str) -> None:
    assert V.verdict(row) == expected


def test_report_json_table_and_save(tmp_path) -> None:
    _, rep = _run(seeds=(0,))
    data = json.loads(rep.to_json())
    assert data["verdicts"] == rep.verdicts and len(data["rows"]) == len(rep.rows)
    assert data["config"]["thresholds"] == V.THRESHOLDS
    # psnr of the frozen video's frame 0 to the original is finite; the marked-image PSNR is not inf
    assert all(
        v is None or isinstance(v, (int, float, str, bool, list, dict))
        for v in data["rows"][0].values()
    )
    table = rep.table()
    for text in ("frozen", "not protected", "motion_ratio <= 0.25", "wipe", "noise", "tiny/toy"):
        assert text in table
    path = rep.save(tmp_path / "out")
    assert json.loads(path.read_text()) == data
    assert (tmp_path / "out" / "table.txt").read_text().strip() == table.strip()


def test_tiny_cog_end_to_end_and_deterministic(tiny_cog) -> None:
    g = torch.Generator().manual_seed(0)
    img = F.interpolate(torch.rand(1, 3, 8, 8, generator=g), size=(64, 64), mode="bilinear")
    prot = (img + (torch.rand(img.shape, generator=g) * 2 - 1) * EPS).clamp(0, 1)
    kw = dict(seeds=(0,), transforms=("identity", "jpeg:75"), num_inference_steps=2)
    rep = ev.evaluate(img, prot, tiny_cog, **kw)
    assert {(r["transform"], r["subject"]) for r in rep.rows} == {
        (t, s) for t in ("identity", "jpeg:75") for s in ("protected", "noise")
    }
    for r in rep.rows:
        for k in (*ev.PAIR_KEYS, *ev.VIDEO_KEYS):
            assert math.isfinite(r[k]), (k, r)
        assert r["clean_flow"] > 0
    assert rep.videos["clean"].shape[:3] == (1, tiny_cog.num_frames, 3)
    assert rep.config["target"]["target"] == "cogvideox-i2v" and rep.config["real_model"] is False
    assert set(rep.verdicts.values()) <= set(V.VERDICTS)
    again = ev.evaluate(img, prot, tiny_cog, **kw)
    assert again.to_json() == rep.to_json()
