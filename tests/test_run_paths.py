"""One batch path for every executor: the local runner and the Ray runner give the same output
names, bytes and manifest; folders that hold one file name never overwrite each other, whichever
executor protects them; a run cut short resumes under both.

Bytes are compared exactly: both executors run the same seeded loop on the same tiny model (built
from its seed), on the CPU of one machine, and save 8-bit PNGs; the existing Ray tests already pin
this byte identity. Manifest lines are compared without ``seconds``, ``run`` and ``time`` (timings
and run ids), sidecars without ``seconds``.
"""

from __future__ import annotations

import hashlib
import json
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from helpers import rand_image  # noqa: E402
from PIL import Image  # noqa: E402

from stillguard.app.config import build_config  # noqa: E402
from stillguard.app.run import MANIFEST, read_manifest, run_batch, run_ray_batch  # noqa: E402
from stillguard.files import sha256_file  # noqa: E402

STEPS = 2
TIMING = ("seconds", "run", "time")
#: the Ray runs start worker processes that import torch and build the model: tens of seconds on
#: a small shared machine, so they are slow tests
ON_RAY = pytest.param("ray", marks=pytest.mark.slow)


@pytest.fixture()
def cfg():
    return build_config("debug", steps=STEPS)


def _img(path: Path, seed: int, size: tuple[int, int] = (40, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rand_image(size[1], size[0], seed=seed)).save(path)
    return path


def _tag(path: Path) -> str:
    """The collision tag of an input: 8 hex digits of the SHA-1 of its absolute path."""
    return hashlib.sha1(os.path.abspath(path).encode()).hexdigest()[:8]


def _runner(executor: str, request: pytest.FixtureRequest, tiny: object) -> Callable[..., object]:
    """``run(inputs, out, cfg, **kw)`` on the chosen executor (one Ray worker on the session's
    local runtime: the naming and resume rules are the driver's, one worker is enough)."""
    if executor == "local":
        return lambda inputs, out, cfg, **kw: run_batch(inputs, out, cfg, tiny, **kw)
    request.getfixturevalue("ray_runtime")

    return lambda inputs, out, cfg, **kw: run_ray_batch(inputs, out, cfg, num_workers=1, **kw)


def _untimed(rec: dict) -> dict:
    return {k: v for k, v in rec.items() if k not in TIMING}


def _manifest_is_true(out: Path) -> list[dict]:
    """Every ``ok`` line names an existing PNG with the recorded SHA-256 and its sidecar; one
    ``ok`` line per output; no temporary file left. Returns the ``ok`` lines."""
    ok = [r for r in read_manifest(out / MANIFEST) if r["status"] == "ok"]
    assert len({r["output"] for r in ok}) == len(ok), "two ok lines share one output name"
    for r in ok:
        assert sha256_file(out / r["output"]) == r["output_sha256"], r["output"]
        side = json.loads((out / r["sidecar"]).read_text())
        assert side["input"]["path"] == r["input"] and side["file"] == Path(r["output"]).name
    assert not list(out.rglob("*.tmp")), "a temporary file survived"
    return ok


def _within_budget(src: Path, png: Path, budget_255: int = 8) -> None:
    """``png`` is ``src`` protected (not another input's output): within the budget, changed."""
    a = np.asarray(Image.open(src).convert("RGB"), dtype=int)
    b = np.asarray(Image.open(png).convert("RGB"), dtype=int)
    assert a.shape == b.shape and 0 < np.abs(a - b).max() <= budget_255, png


# ----------------------------------------------------------------------------- parity
@pytest.mark.slow
def test_local_and_ray_give_the_same_names_bytes_sidecars_and_manifest(
    ray_runtime, tmp_path, tiny_cog, cfg
):
    src, more = tmp_path / "in", tmp_path / "more"
    for i, rel in enumerate(["p0.png", "p1.png", "sub/p2.png", "sub/p3.png"]):
        _img(src / rel, seed=i)
    _img(more / "p0.png", seed=10)  # the same name as in/p0.png in one run: both get tagged
    (src / "zz-bad.jpg").write_text("I am not a JPEG\n")
    inputs = [src, more]
    local = run_batch(inputs, tmp_path / "local", cfg, tiny_cog)
    on_ray = run_ray_batch(inputs, tmp_path / "ray", cfg, num_workers=2)
    assert [r.status for r in local.items] == ["ok", "ok", "failed", "ok", "ok", "ok"]
    assert [r.status for r in on_ray.items] == [r.status for r in local.items]
    assert local.config_hash == on_ray.config_hash and local.exit_code == on_ray.exit_code == 1

    def files(out: Path) -> list[str]:
        return sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file())

    assert files(tmp_path / "local") == files(tmp_path / "ray")
    assert f"p0-{_tag(src / 'p0.png')}.protected.png" in files(tmp_path / "local")
    for name in files(tmp_path / "local"):
        a, b = tmp_path / "local" / name, tmp_path / "ray" / name
        if name.endswith(".png"):
            assert a.read_bytes() == b.read_bytes(), name
        elif name.endswith(".protected.json"):
            sa, sb = json.loads(a.read_text()), json.loads(b.read_text())
            assert {**sa, "seconds": 0} == {**sb, "seconds": 0}, name

    def lines(out: Path) -> list[dict]:
        return sorted(
            (_untimed(r) for r in read_manifest(out / MANIFEST)), key=lambda r: r["input"]
        )

    assert lines(tmp_path / "local") == lines(tmp_path / "ray")
    _manifest_is_true(tmp_path / "local")
    _manifest_is_true(tmp_path / "ray")


# ----------------------------------------------------------------------------- one name, 3 folders
@pytest.mark.parametrize("executor", ["local", ON_RAY])
def test_three_folders_with_one_file_name_keep_three_outputs(
    executor, request, tmp_path, tiny_cog, cfg
):
    """``a/IMG_0001.png``, then ``b/``, then ``c/`` into one folder: three outputs, none lost."""
    run = _runner(executor, request, tiny_cog)
    out = tmp_path / "out"
    srcs = [_img(tmp_path / d / "IMG_0001.png", seed=k) for k, d in enumerate("abc")]
    kept: dict[Path, bytes] = {}
    for src in srcs:
        res = run([src.parent], out, cfg)
        assert [r.status for r in res.items] == ["ok"], res.items
        kept[Path(res.items[0].output)] = Path(res.items[0].output).read_bytes()
    assert sorted(p.name for p in kept) == sorted(
        ["IMG_0001.protected.png", *(f"IMG_0001-{_tag(s)}.protected.png" for s in srcs[1:])]
    )
    assert sorted(p.name for p in out.glob("*.protected.png")) == sorted(p.name for p in kept)
    for png, data in kept.items():
        assert png.read_bytes() == data, f"{png.name} was overwritten"
    ok = _manifest_is_true(out)
    assert sorted(r["input"] for r in ok) == sorted(os.path.abspath(s) for s in srcs)
    for r in ok:
        _within_budget(Path(r["input"]), out / r["output"])
    # the same three runs again: each input is found done under its own name, nothing is added
    before = (out / MANIFEST).read_bytes()
    for src, png in zip(srcs, kept, strict=True):
        again = run([src.parent], out, cfg)
        assert [(r.status, r.output) for r in again.items] == [("skipped", str(png))]
    assert (out / MANIFEST).read_bytes() == before


# ----------------------------------------------------------------------------- resume
@pytest.mark.parametrize("executor", ["local", ON_RAY])
def test_a_run_killed_mid_folder_resumes_under_the_taken_name(
    executor, request, tmp_path, tiny_cog, cfg
):
    """The state a SIGKILLed driver leaves (outputs without their manifest line, a cut last line,
    a stale temporary) on the second folder's run; the same command again finishes it: every
    input once, the first folder's output untouched."""
    run = _runner(executor, request, tiny_cog)
    out = tmp_path / "out"
    first = _img(tmp_path / "a" / "IMG_0001.png", seed=0)
    second = [_img(tmp_path / "b" / f"IMG_000{k}.png", seed=k + 1) for k in (1, 2, 3)]
    run([first.parent], out, cfg)
    kept = (out / "IMG_0001.protected.png").read_bytes()
    run([second[0].parent], out, cfg)
    lines = (out / MANIFEST).read_bytes().splitlines(keepends=True)
    assert len(lines) == 4
    (out / MANIFEST).write_bytes(b"".join(lines[:2]) + lines[2][:40])  # the kill
    (out / ".IMG_0003.protected.png.k1ll3d.tmp").write_bytes(b"left by a SIGKILL")
    again = run([second[0].parent], out, cfg)
    assert sorted(r.status for r in again.items) == ["ok", "ok", "skipped"]
    assert (out / "IMG_0001.protected.png").read_bytes() == kept
    ok = _manifest_is_true(out)
    assert sorted(r["input"] for r in ok) == sorted(os.path.abspath(s) for s in [first, *second])
    assert f"IMG_0001-{_tag(second[0])}.protected.png" in {r["output"] for r in ok}
    for r in ok:
        _within_budget(Path(r["input"]), out / r["output"])


# ----------------------------------------------------------------------------- the CLI, --ray local
def _cli_three_folders(tmp_path: Path, extra: list[str]) -> None:
    out = tmp_path / "out"
    srcs = [_img(tmp_path / d / "IMG_0001.png", seed=k) for k, d in enumerate("abc")]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for src in srcs:
        cmd = [sys.executable, "-m", "stillguard.cli", "protect", str(src.parent), "-o", str(out),
               "--model", "tiny", "--steps", str(STEPS), "--json", *extra]  # fmt: skip
        res = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
        assert res.returncode == 0, res.stderr
        assert json.loads(res.stdout)["ok"] == 1
    ok = _manifest_is_true(out)
    assert len(ok) == 3 and len(list(out.glob("*.protected.png"))) == 3
    for r in ok:
        _within_budget(Path(r["input"]), out / r["output"])


@pytest.mark.slow
def test_cli_three_folders_with_one_file_name_local(tmp_path):
    _cli_three_folders(tmp_path, [])


@pytest.mark.slow
def test_cli_three_folders_with_one_file_name_ray_local(tmp_path):
    """The report as a user made it: ``--ray local`` three times into one folder."""
    pytest.importorskip("ray")
    _cli_three_folders(tmp_path, ["--ray", "local", "--workers", "1"])


# ----------------------------------------------------------------------------- old import paths
#: (old module, name, new home) of every name kept for one release (``stillguard.app._moved``)
KEPT = [
    ("batch", "run_batch", "run"),
    ("batch", "run_hash", "run"),
    ("batch", "BatchEvent", "run"),
    ("batch", "BatchResult", "run"),
    ("batch", "ItemResult", "run"),
    ("ray_runner", "run_ray_batch", "run"),
    ("ray_actor", "ProtectWorker", "run.ray_worker"),
    ("inputs", "collect", "run"),
    ("inputs", "check_writable", "outputs"),
    ("inputs", "BatchItem", "run"),
    ("inputs", "tagged", "run.names"),
    ("inputs", "SUFFIX", "run.names"),
    ("manifest", "MANIFEST", "run"),
    ("manifest", "Manifest", "run.manifest"),
    ("manifest", "read_manifest", "run"),
    ("manifest", "relative", "run.manifest"),
    ("manifest", "remove_stale_temporaries", "run.manifest"),
    ("results", "ItemResult", "run"),
    ("results", "BatchEvent", "run"),
    ("results", "BatchResult", "run"),
]


@pytest.mark.parametrize(("old", "name", "new"), KEPT)
def test_old_import_paths_still_work_and_warn(old, name, new):
    """The pytest config ignores DeprecationWarning: ``pytest.warns`` records it regardless."""
    import importlib

    module = importlib.import_module(f"stillguard.app.{old}")
    with pytest.warns(DeprecationWarning, match=rf"stillguard\.app\.{old}\.{name} has moved"):
        obj = getattr(module, name)
    assert obj is getattr(importlib.import_module(f"stillguard.app.{new}"), name)
    with pytest.warns(DeprecationWarning):
        exec(f"from stillguard.app.{old} import {name}", {})  # the usual spelling warns too


def test_old_paths_keep_no_other_name_and_the_private_ones_are_gone():
    import importlib

    import stillguard.app.batch as old

    with pytest.raises(AttributeError, match="no attribute 'protect_file'"):
        old.protect_file  # noqa: B018 - its signature changed: use stillguard.app.run.protect_one
    for private in ("jobs", "batch_groups", "ray_cluster"):
        with pytest.raises(ModuleNotFoundError):
            importlib.import_module(f"stillguard.app.{private}")
