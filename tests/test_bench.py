"""`stillguard bench` on the tiny random model: bad inputs, one small run, resume, the table rules.

The run is as small as a bench gets (1 builtin photo, vid-freeze with 2 PGD steps and the noise
baseline, attacks none and jpeg75, 1 seed): it checks the plumbing and the files, not efficacy.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from typer.testing import CliRunner

from stillguard import cli
from stillguard.app.bench.table import aggregate, markdown, succeeded

runner = CliRunner()
ROOT = Path(__file__).resolve().parents[1]
SMALL = ["--targets", "cogvideox-i2v:tiny", "--methods", "vid-freeze:steps=2,noise", "--photos",
         "builtin:1", "--attacks", "none,jpeg75", "--seeds", "0"]  # fmt: skip


def _run(*args):
    return runner.invoke(cli.app, ["bench", *[str(a) for a in args]], catch_exceptions=False)


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--methods", "vid-frieze"], "unknown method 'vid-frieze': did you mean 'vid-freeze'"),
        (["--targets", "cogvideo:tiny"], "unknown target 'cogvideo'"),
        (["--attacks", "none,jpg75"], "--attacks 'jpg75'"),
        (["--methods", "vid-freeze:unrol=2"], "unrol"),
        (["--seeds", "0,x"], "--seeds"),
        (["--photos", "builtin:9"], "8 photos"),
    ],
)
def test_bad_options_are_one_line_and_write_nothing(args, message, tmp_path):
    out = tmp_path / "out"
    res = _run("-o", out, *SMALL, *args)
    lines = [ln for ln in res.output.splitlines() if ln.strip()]
    assert res.exit_code == 2
    assert [ln for ln in lines if ln.startswith("error:")] == [lines[-1]] and message in lines[-1]
    assert "Traceback" not in res.output and not out.exists()


def test_empty_and_unreadable_photo_folders(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    res = _run("-o", tmp_path / "o1", *SMALL, "--photos", empty)
    assert res.exit_code == 2 and "no image files" in res.output and not (tmp_path / "o1").exists()
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\nnot really")
    res = _run("-o", tmp_path / "o2", *SMALL, "--photos", bad)
    assert res.exit_code == 2 and "broken.png" in res.output and not (tmp_path / "o2").exists()


@pytest.fixture(scope="module")
def small_run(tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "out"
    res = _run("-o", out, *SMALL, "--json")
    assert res.exit_code == 0, res.output
    return out, json.loads(res.output[res.output.index("{") :])


def test_small_run_writes_the_table_and_report(small_run):
    out, result = small_run
    rows = json.loads((out / "table.json").read_text())["rows"]
    assert [(r["method"], r["attack"]) for r in rows] == [
        ("vid-freeze:steps=2", "none"), ("vid-freeze:steps=2", "jpeg75"), ("noise", "none"),
        ("noise", "jpeg75")]  # fmt: skip
    for r in rows:
        assert r["target"] == "cogvideox-i2v:tiny" and r["n"] == 1
        assert math.isfinite(r["motion"]) and r["motion"] > 0 and 0 <= r["success"] <= 1
        assert r["psnr"] > 30  # 8/255 budget on a 64x64 photo
        assert r["fdfr"] == 1.0 and r["too_small"]  # the tiny model's frames are too small
    md = (out / "table.md").read_text()
    assert "frames too small for the face detector" in md and "1.00*" in md
    assert "stillguard bench" in md and "--methods vid-freeze:steps=2,noise" in md
    csv = (out / "table.csv").read_text().splitlines()
    assert csv[0].startswith("target,method,attack,n,photos,motion") and len(csv) == 5
    html = (out / "report" / "index.html").read_text()
    assert "bar-motion.png" in html and (out / "report" / "bar-motion.png").stat().st_size > 1000
    strips = [p for p in html.split('src="')[1:] if ".strip.png" in p.split('"')[0]]
    assert len(strips) == 4
    for s in strips:
        assert (out / "report" / s.split('"')[0]).resolve().is_file()
    record = json.loads((out / "bench.json").read_text())
    assert record["versions"]["torch"].startswith("2.") and record["spec"]["seeds"] == [0]


def test_rerun_skips_every_finished_cell(small_run):
    out, _ = small_run
    cells = sorted((out / "cells").rglob("*.json"))
    assert len(cells) == 2
    before = {p: p.stat().st_mtime_ns for p in cells}
    res = _run("-o", out, *SMALL, "--json")
    assert res.exit_code == 0
    assert {p: p.stat().st_mtime_ns for p in cells} == before  # nothing redone


def test_attack_lists_with_commas_inside():
    from stillguard.app.bench.spec import parse_attacks

    assert parse_attacks("none;noisy-upscale:noise=0.1,scale=0.25") == [
        "none", "noisy-upscale:noise=0.1,scale=0.25"]  # fmt: skip


@pytest.mark.slow
def test_gpu_memory_sizes_each_pair_with_the_planner():
    """Planning on fake tensors takes minutes on a loaded 2-core machine: slow suite."""
    from stillguard.app.bench.configs import run_config
    from stillguard.app.bench.spec import BenchSpec, parse_methods, parse_targets
    from stillguard.errors import StillguardError

    spec = BenchSpec(parse_targets("cogvideox-i2v:tiny"), parse_methods("vid-freeze", 2, None,
                     "default"), ["none"], [0], gpu_memory="4GiB")  # fmt: skip
    assert run_config(spec, spec.targets[0], spec.methods[0]).rungs == []  # the tiny model fits
    spec.gpu_memory = "1MiB"
    with pytest.raises(StillguardError, match="does not fit"):
        run_config(spec, spec.targets[0], spec.methods[0])


def test_success_rule_and_markdown():
    frozen = {"motion_ratio": 0.1, "dissim_ratio": 0.1, "video_ssim": 0.9, "fidelity_drop": 0.0}
    moving = {"motion_ratio": 1.0, "dissim_ratio": 1.0, "video_ssim": 0.9, "fidelity_drop": 0.0}
    assert succeeded(frozen) and not succeeded(moving)
    assert succeeded({**moving, "clean_ism_match": 1.0, "ism_match": 0.2})  # the face was lost
    assert not succeeded({**moving, "clean_ism_match": 0.2, "ism_match": 0.0})  # clean had none
    cells = [{"target": "t", "method": "m", "photo": p, "seconds": 2.0, "peak_mib": 10.0,
              "fidelity": {"psnr": 30.0, "ssim": 0.9},
              "rows": [{"attack": "none", "seed": 0, **r}]} for p, r in (("a", frozen), ("b", moving))]  # fmt: skip
    (row,) = aggregate(cells, ["none"])
    assert row["success"] == 0.5 and row["motion"] == pytest.approx(0.55) and row["n"] == 2
    assert "ISM" not in markdown([row])  # no face metric measured: no face column


@pytest.mark.slow
def test_resume_after_a_kill(tmp_path):
    """SIGKILL the bench once its first cell is written; the rerun keeps that cell and finishes."""
    out = tmp_path / "out"
    args = [sys.executable, "-m", "stillguard.cli", "bench", "-o", str(out), *SMALL]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src"), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(args, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 600
    while time.time() < deadline and not list((out / "cells").rglob("*.json")):
        time.sleep(0.2)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    first = list((out / "cells").rglob("*.json"))
    assert len(first) == 1 and not (out / "table.md").exists()
    stamp = first[0].stat().st_mtime_ns
    done = subprocess.run(args, env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert first[0].stat().st_mtime_ns == stamp and len(list((out / "cells").rglob("*.json"))) == 2
    assert (out / "table.md").exists()


def test_extra_metrics_without_dlib_and_with_tiny_encoders(monkeypatch):
    import torch

    from stillguard.encoders import ClipImage, DinoImage, QAlign, faces
    from stillguard.measure.extra import video_metrics

    g = torch.Generator().manual_seed(0)
    photo = torch.rand(1, 3, 40, 40, generator=g)
    video = torch.rand(1, 3, 3, 40, 40, generator=g)
    other = torch.rand(1, 3, 3, 40, 40, generator=g)
    encoders = {"dino": DinoImage.tiny(), "clip": ClipImage.tiny(), "qalign": QAlign.tiny()}
    monkeypatch.setattr(faces, "available", lambda: "face metrics need dlib: pip install ...")
    fn = video_metrics(photo, encoders)
    same, diff = fn(video, video, "clean"), fn(other, video, "protected")
    assert set(same) == {"dino", "clip", "qalign"}  # no face column without dlib, no crash
    assert same["dino"] == pytest.approx(1.0, abs=1e-5) and diff["dino"] < 1.0
    assert -1 <= diff["clip"] <= 1 and 0 <= diff["qalign"] <= 1


def test_builtin_photo_sets():
    from stillguard.app.bench.photos import load_photos
    from stillguard.measure.faces import photo_face

    held = load_photos("builtin")
    assert [p.name for p in held][:2] == ["chelsea", "synthetic-0"] and len(held) == 8
    assert all(p.image.shape == (1, 3, 64, 64) for p in held)
    assert len({p.sha256 for p in held}) == 8
    (face,) = load_photos("faces")
    assert face.image.shape == (1, 3, 256, 256) and photo_face(face.image) is not None
