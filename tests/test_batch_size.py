"""Bulk jobs with ``--batch-size N`` (stillguard.app.run: groups, unit): same outputs as one at a time,
resumable across batch sizes, failures stay per input; on the tiny random model."""

from __future__ import annotations

import errno
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
import torch
from helpers import rand_image
from PIL import Image
from typer.testing import CliRunner

from stillguard import cli
from stillguard.app import run as B
from stillguard.app.config import build_config
from stillguard.app.run import MANIFEST, read_manifest, unit
from stillguard.app.run.groups import Pending, tensor_size
from stillguard.app.run.local import Waiting
from stillguard.errors import InputError
from stillguard.files import WriteError

runner = CliRunner()
FAST = ["--model", "tiny", "--steps", "2"]
#: two sizes, interleaved: (W, H) per input; p4 is alone in its size group with --batch-size 2
SIZES = [(40, 32), (48, 32), (40, 32), (48, 32), (40, 32)]
#: what float rounding of batched kernels may do: a few values moved by a few 8-bit levels
MAX_LEVELS, MAX_FRACTION = 3, 0.01


def run(*args: str):
    return runner.invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


def _folder(root: Path, sizes: list[tuple[int, int]] = SIZES) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    for i, (w, h) in enumerate(sizes):
        Image.fromarray(rand_image(h, w, seed=i)).save(root / f"p{i}.png")
    return [f"p{i}" for i in range(len(sizes))]


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path), dtype=int)


def _close(a: Path, b: Path) -> None:
    x, y = _pixels(a), _pixels(b)
    assert x.shape == y.shape
    d = np.abs(x - y)
    assert d.max() <= MAX_LEVELS and (d > 0).mean() <= MAX_FRACTION, (d.max(), (d > 0).mean())


def _by_input(out: Path) -> dict[str, dict]:
    return {Path(r["input"]).stem: r for r in read_manifest(out / MANIFEST)}


@pytest.fixture()
def tiny(tiny_adapter):
    return tiny_adapter("cogvideox-i2v")


@pytest.fixture()
def cfg():
    return build_config("debug", steps=2)


# ----------------------------------------------------------------------------- same outputs
def test_batch_size_2_gives_what_one_at_a_time_gives(tmp_path):
    src = tmp_path / "in"
    names = _folder(src)
    one, two = tmp_path / "one", tmp_path / "two"
    r1 = run("protect", src, "-o", one, *FAST, "--json")
    r2 = run("protect", src, "-o", two, *FAST, "--json", "--batch-size", "2")
    assert r1.exit_code == 0 and r2.exit_code == 0, r2.output
    j1, j2 = json.loads(r1.stdout), json.loads(r2.stdout)
    assert j1["ok"] == j2["ok"] == len(names) and j1["config_hash"] == j2["config_hash"]
    assert [Path(r["input"]).stem for r in j2["items"]] == names  # results in input order
    assert sorted(p.name for p in one.iterdir()) == sorted(p.name for p in two.iterdir())
    m1, m2 = _by_input(one), _by_input(two)
    assert sorted(m1) == sorted(m2) == names
    keys = ("status", "input", "output", "sidecar", "input_sha256", "config_hash", "real_model")
    for n in names:
        assert {k: m1[n][k] for k in keys} == {k: m2[n][k] for k in keys}
        _close(one / f"{n}.protected.png", two / f"{n}.protected.png")
        s1 = json.loads((one / f"{n}.protected.json").read_text())
        s2 = json.loads((two / f"{n}.protected.json").read_text())
        assert s1.keys() == s2.keys()
        for k in (
            "file",
            "input",
            "input_pixels_sha256",
            "config_hash",
            "run_config",
            "budget_255",
        ):
            assert s1[k] == s2[k], k
        c1, c2 = dict(s1["config"]), dict(s2["config"])
        assert c1.pop("batch_size") == 1
        assert c2.pop("batch_size") == (1 if n == "p4" else 2)  # p4 is alone in its size
        assert c1 == c2
        assert s2["losses"] == pytest.approx(s1["losses"], rel=1e-4, abs=1e-7)
        assert s2["linf_255"] <= s2["budget_255"]


def test_each_input_gets_start_steps_done_and_results_stay_in_input_order(tmp_path, tiny, cfg):
    src = tmp_path / "in"
    names = _folder(src)
    events = []
    res = B.run_batch([src], tmp_path / "out", cfg, tiny, callback=events.append, batch_size=2)
    assert [Path(r.input).stem for r in res.items] == names and res.exit_code == 0
    for i in range(len(names)):
        mine = [(e.kind, e.step) for e in events if e.index == i]
        assert mine == [("start", 0), ("step", 1), ("step", 2), ("done", 0)], (i, mine)
    done = [e.index for e in events if e.kind == "done"]
    assert done == [0, 2, 1, 3, 4]  # group by group, input order within a group
    # one pass per group: p0 and p2 step together
    steps = [e.index for e in events if e.kind == "step"]
    assert steps[:4] == [0, 2, 0, 2]


# ----------------------------------------------------------------------------- resume
def test_resume_with_another_batch_size_skips_finished_inputs(tmp_path, tiny, cfg):
    src, out = tmp_path / "in", tmp_path / "out"
    names = _folder(src)

    def stop_after_two(ev) -> None:
        if ev.kind == "done" and ev.index == 1:
            raise KeyboardInterrupt  # what Ctrl-C does after the second input is finished

    with pytest.raises(KeyboardInterrupt):
        B.run_batch([src], out, cfg, tiny, callback=stop_after_two, batch_size=1)
    assert sorted(_by_input(out)) == ["p0", "p1"]
    again = B.run_batch([src], out, cfg, tiny, batch_size=2)
    assert [r.status for r in again.items] == ["skipped", "skipped", "ok", "ok", "ok"]
    ok = [r for r in read_manifest(out / MANIFEST) if r["status"] == "ok"]
    assert sorted(Path(r["input"]).stem for r in ok) == names  # each input protected once

    def no_model():
        raise AssertionError("the model must not load when everything is done")

    last = B.run_batch([src], out, cfg, no_model, batch_size=3)
    assert [r.status for r in last.items] == ["skipped"] * len(names)
    assert last.config_hash == again.config_hash
    assert len(read_manifest(out / MANIFEST)) == len(names)


# ----------------------------------------------------------------------------- bad values
@pytest.mark.parametrize("value", ["0", "-1", "x", "1.5", ""])
@pytest.mark.parametrize("ray", [False, True])
def test_bad_batch_size_one_error_line_exit_2(tmp_path, value, ray):
    src = tmp_path / "in"
    _folder(src, SIZES[:1])
    extra = ["--ray", "local"] if ray else []
    res = run("protect", src, "-o", tmp_path / "out", *FAST, "--batch-size", value, *extra)
    assert res.exit_code == 2 and "Traceback" not in res.output
    lines = [ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("warning")]
    assert len(lines) == 1 and lines[0].startswith("error: --batch-size"), res.stderr
    assert not (tmp_path / "out").exists()


def test_run_batch_refuses_a_bad_batch_size_before_writing(tmp_path, tiny, cfg):
    src = tmp_path / "in"
    _folder(src, SIZES[:1])
    for bad in (0, -2, 1.5, True, "2"):
        with pytest.raises(InputError, match="batch size"):
            B.run_batch([src], tmp_path / "out", cfg, tiny, batch_size=bad)
    assert not (tmp_path / "out").exists()


# ----------------------------------------------------------------------------- failures
def test_broken_input_and_failed_write_fail_alone_in_a_batch(tmp_path, tiny, cfg, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder(src, [(40, 32)] * 4)
    (src / "p1b.jpg").write_text("I am not a JPEG\n")  # between p1 and p2 in input order
    real_save = unit.save_protected

    def save(result, path, **kw):
        if Path(path).name == "p2.protected.png":
            raise WriteError(path, OSError(errno.EACCES, "Permission denied"))
        return real_save(result, path, **kw)

    monkeypatch.setattr(unit, "save_protected", save)
    res = B.run_batch([src], out, cfg, tiny, batch_size=4)
    status = {Path(r.input).stem: r.status for r in res.items}
    assert status == {"p0": "ok", "p1": "ok", "p1b": "failed", "p2": "failed", "p3": "ok"}
    assert res.exit_code == 1
    assert "not an image" in res.items[2].error and "Permission denied" in res.items[3].error
    side = json.loads((out / "p3.protected.json").read_text())
    assert side["config"]["batch_size"] == 4  # p0, p1, p2, p3 shared one pass
    assert sorted(p.name for p in out.glob("*.png")) == [f"p{i}.protected.png" for i in (0, 1, 3)]


def test_full_disk_stops_a_batched_run(tmp_path, tiny, cfg, monkeypatch):
    src, out = tmp_path / "in", tmp_path / "out"
    _folder(src, [(40, 32)] * 3)

    def full(result, path, **kw):
        raise WriteError(path, OSError(errno.ENOSPC, "No space left on device"))

    monkeypatch.setattr(unit, "save_protected", full)
    with pytest.raises(WriteError, match="p0.protected.png"):
        B.run_batch([src], out, cfg, tiny, batch_size=2)
    assert read_manifest(out / MANIFEST) == []


def test_a_group_that_fails_as_a_whole_is_protected_one_at_a_time(
    tmp_path, tiny, cfg, monkeypatch, caplog
):
    import logging

    sg = logging.getLogger("stillguard")  # a CLI test may have left its (closed) stderr handler
    monkeypatch.setattr(sg, "handlers", [])
    monkeypatch.setattr(sg, "propagate", True)
    src = tmp_path / "in"
    names = _folder(src, [(40, 32)] * 3)
    plain = B.run_batch([src], tmp_path / "plain", cfg, tiny)

    import stillguard.loop

    real = stillguard.loop.protect_batch

    def oom(images, *a, **k):
        if len(images) > 1:
            raise RuntimeError("CUDA out of memory (pretend)")
        return real(images, *a, **k)  # protect() of one image goes through here too

    monkeypatch.setattr(stillguard.loop, "protect_batch", oom)
    res = B.run_batch([src], tmp_path / "out", cfg, tiny, batch_size=3)
    assert [r.status for r in res.items] == ["ok"] * len(names)
    assert "one at a time" in caplog.text and "out of memory" in caplog.text
    for a, b in zip(plain.items, res.items, strict=True):
        assert a.output_sha256 == b.output_sha256  # one at a time: the very same bytes


# ----------------------------------------------------------------------------- memory bound
def test_pending_holds_at_most_twice_the_batch_size_and_loses_nothing():
    def entry(i: int, h: int) -> Waiting:
        loaded = SimpleNamespace(tensor=torch.empty(1, 3, h, 8))
        return Waiting(i, None, loaded, 0.0)  # type: ignore[arg-type]

    heights = [8, 9, 10, 8, 9, 10, 11, 8, 12, 13, 8, 9]  # many sizes, interleaved
    pending, flushed = Pending(2), []
    for i, h in enumerate(heights):
        w = entry(i, h)
        flushed += pending.add(w, tensor_size(w.loaded))
        assert len(pending) < 4
    flushed += list(pending.drain())
    assert sorted(w.index for g in flushed for w in g) == list(range(len(heights)))
    for g in flushed:
        assert 1 <= len(g) <= 2 and len({w.loaded.tensor.shape for w in g}) == 1
    assert [w.index for w in flushed[0]] == [0, 3]  # a full group goes at once
    with pytest.raises(InputError):
        Pending(0)
