"""Batch protection with a resumable manifest (stillguard.app.run), on the tiny random model."""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from stillguard.app import run as B
from stillguard.app.config import build_config
from stillguard.app.outputs import check_writable
from stillguard.app.run import MANIFEST, collect, read_manifest
from stillguard.errors import InputError, ModelError
from stillguard.files import sha256_file


def _img(path: Path, h: int = 32, w: int = 40, c: int = 3, seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    arr = np.random.default_rng(seed).integers(0, 256, (h, w, c), dtype=np.uint8)
    Image.fromarray(arr).save(path)
    return path


@pytest.fixture()
def tiny(tiny_adapter):
    return tiny_adapter("cogvideox-i2v")


@pytest.fixture()
def cfg():
    return build_config("debug", steps=2)


def _lines(out: Path) -> list[dict]:
    return [json.loads(line) for line in (out / MANIFEST).read_text().splitlines()]


# ----------------------------------------------------------------------------- planning
def test_plan_expands_sorted_recursive_and_skips_junk(tmp_path):
    src = tmp_path / "in"
    for name in (
        "b.png",
        "a.jpg",
        "sub/c.png",
        ".hidden.png",
        "x.protected.png",
        "notes.txt",
        ".git/d.png",
    ):
        p = src / name
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    (src / "sub" / "loop").symlink_to(src, target_is_directory=True)  # a symlink loop
    items = collect([src], tmp_path / "out")
    assert [i.input.relative_to(src).as_posix() for i in items] == ["a.jpg", "b.png", "sub/c.png"]
    out = tmp_path / "out"
    assert [i.output for i in items] == [
        out / "a.protected.png",
        out / "b.protected.png",
        out / "sub/c.protected.png",
    ]
    assert items[0].sidecar == out / "a.protected.json"


def test_plan_collisions_get_stable_distinct_names(tmp_path):
    a, b, c = tmp_path / "x/cat.png", tmp_path / "y/cat.jpg", tmp_path / "y/Cat.webp"
    for p in (a, b, c):
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(b"x")
    first = collect([a, b, c, a], tmp_path / "out")
    names = [i.output.name for i in first]
    assert len(first) == 3 and len({n.lower() for n in names}) == 3
    assert all(n.endswith(".protected.png") and n.lower().startswith("cat-") for n in names)
    assert [i.output for i in collect([a, b, c], tmp_path / "out")] == [i.output for i in first]


def test_plan_refuses_output_over_input_and_file_as_folder(tmp_path):
    a = _img(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    clash = _img(out / "a.protected.png")  # an input that a.png's output would replace
    with pytest.raises(InputError, match="output path is an input"):
        collect([a, clash], out)
    with pytest.raises(InputError, match="not a folder"):
        collect([a], a)
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no input images"):
        collect([tmp_path / "empty"], out)


def test_check_writable(tmp_path, monkeypatch):
    check_writable(tmp_path / "new" / "deeper")
    f = tmp_path / "file"
    f.write_text("x")
    with pytest.raises(InputError, match="is a file"):
        check_writable(f / "sub")
    monkeypatch.setattr("stillguard.app.outputs.os.access", lambda *a: False)
    with pytest.raises(InputError, match="not writable"):
        check_writable(tmp_path / "new")


# ----------------------------------------------------------------------------- running
def test_batch_bad_file_reported_rest_proceeds_then_resume_skips(tmp_path, tiny, cfg):
    src = tmp_path / "in"
    _img(src / "a.png", seed=1)
    rgba = _img(src / "b.png", c=4, seed=2)
    (src / "c.jpg").write_text("I am not a JPEG\n")
    out = tmp_path / "out"
    events = []
    res = B.run_batch([src], out, cfg, tiny, callback=events.append)
    assert [r.status for r in res.items] == ["ok", "ok", "failed"] and res.exit_code == 1
    assert "not an image" in res.items[2].error and str(src / "c.jpg") in res.items[2].error
    kinds = [e.kind for e in events]
    assert kinds.count("start") == 3 and kinds.count("done") == 3 and kinds.count("step") == 4
    lines = _lines(out)
    assert [r["status"] for r in lines] == ["ok", "ok", "failed"]
    for rec in lines[:2]:
        assert sha256_file(out / rec["output"]) == rec["output_sha256"]
        assert (
            rec["input_sha256"] == sha256_file(rec["input"])
            and rec["config_hash"] == res.config_hash
        )
    png = Image.open(out / "b.protected.png")
    assert png.mode == "RGBA" and np.array_equal(
        np.asarray(png)[..., 3], np.asarray(Image.open(rgba))[..., 3]
    )
    side = json.loads((out / "a.protected.json").read_text())
    assert side["real_model"] is False and "does not protect" in side["warning"]
    assert (
        side["input"]["sha256"] == lines[0]["input_sha256"]
        and side["config_hash"] == res.config_hash
    )

    def no_model():
        raise AssertionError("the model must not load when everything is done")

    again = B.run_batch([src], out, cfg, no_model)
    assert [r.status for r in again.items] == ["skipped", "skipped", "failed"]
    # a resume appends nothing for what it skips (the manifest does not grow), only new failures
    assert [r["status"] for r in _lines(out)[3:]] == ["failed"]
    assert not [p for p in out.rglob("*.tmp")]


def test_resume_redoes_changed_config_missing_or_tampered_output(tmp_path, tiny, cfg):
    src = tmp_path / "in"
    _img(src / "a.png", seed=1)
    _img(src / "b.png", seed=2)
    out = tmp_path / "out"
    first = B.run_batch([src], out, cfg, tiny)
    (out / "a.protected.png").unlink()
    (out / "b.protected.png").write_bytes(b"tampered")
    redo = B.run_batch([src], out, cfg, tiny)
    assert [r.status for r in redo.items] == ["ok", "ok"]
    assert [r.output_sha256 for r in redo.items] == [
        r.output_sha256 for r in first.items
    ]  # same seed
    other = B.run_batch([src], out, build_config("debug", steps=3), tiny)
    assert [r.status for r in other.items] == [
        "ok",
        "ok",
    ] and other.config_hash != first.config_hash
    meta = B.run_batch([src], out, build_config("debug", steps=3), tiny, keep_metadata=True)
    assert [r.status for r in meta.items] == ["ok", "ok"]


def test_partial_manifest_line_is_cut_and_lock_is_exclusive(tmp_path, tiny, cfg):
    import fcntl

    src = _img(tmp_path / "in" / "a.png")
    out = tmp_path / "out"
    B.run_batch([src], out, cfg, tiny)
    with open(out / MANIFEST, "ab") as f:
        f.write(b'{"status": "ok", "input": "half a li')  # what a kill mid-write leaves
    (out / ".a.protected.png.x1y2.tmp").write_bytes(b"stale")
    res = B.run_batch([src], out, cfg, tiny)
    assert res.items[0].status == "skipped"
    text = (out / MANIFEST).read_text()
    assert "half a li" not in text and text.endswith("\n") and len(_lines(out)) == 1
    assert not (out / ".a.protected.png.x1y2.tmp").exists()
    with open(out / MANIFEST, "ab") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        with pytest.raises(InputError, match="another stillguard run"):
            B.run_batch([src], out, cfg, tiny)


def test_model_that_cannot_load_stops_the_batch(tmp_path, cfg):
    src = _img(tmp_path / "in" / "a.png")

    def broken():
        raise ModelError("no weights here")

    with pytest.raises(ModelError):
        B.run_batch([src], tmp_path / "out", cfg, broken)
    assert os.listdir(tmp_path / "out") == [MANIFEST] and _lines(tmp_path / "out") == []


def test_read_manifest_ignores_garbage(tmp_path):
    m = tmp_path / "m.jsonl"
    m.write_text('{"a": 1}\nnot json\n[1, 2]\n{"b": 2}\n{"c"')
    assert read_manifest(m) == [{"a": 1}, {"b": 2}]
    assert read_manifest(tmp_path / "none.jsonl") == []
