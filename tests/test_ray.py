"""Bulk protection on Ray (stillguard.app.run.cluster): a real local Ray runtime, 2 CPU actors, the
tiny model; exactly once, also when an actor or the driver is killed with SIGKILL mid-run.

The runtime listens on 127.0.0.1 only (``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0``, set before Ray is
imported), without the dashboard and without usage statistics. Actor process ids come from the
GCS actor table (``ray._private.state.actors()``): Ray's public state API
(``ray.util.state.list_actors``) is served by the dashboard, which these tests keep off.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")

import numpy as np  # noqa: E402
import pytest  # noqa: E402
import ray  # noqa: E402
from helpers import SessionWatch, rand_image  # noqa: E402
from PIL import Image  # noqa: E402

from stillguard.app.config import build_config  # noqa: E402
from stillguard.app.run import MANIFEST, read_manifest, run_batch, run_ray_batch  # noqa: E402
from stillguard.files import sha256_file  # noqa: E402

N = 10
STEPS = 2


@pytest.fixture()
def runtime(ray_runtime):
    """The session's local Ray runtime (2 CPUs, 127.0.0.1, no dashboard; ``conftest.py``)."""
    return ray_runtime


def _folder(root: Path, n: int = N, size: tuple[int, int] = (40, 32)) -> list[str]:
    root.mkdir(parents=True, exist_ok=True)
    for i in range(n):
        Image.fromarray(rand_image(size[1], size[0], seed=i)).save(root / f"p{i:02d}.png")
    return [f"p{i:02d}" for i in range(n)]


def _exactly_once(src: Path, out: Path, names: list[str], budget_255: int = 8) -> list[dict]:
    """Every input: one ``ok`` manifest line, one intact PNG + sidecar within budget; no temporaries."""
    lines = read_manifest(out / MANIFEST)
    ok = [r for r in lines if r["status"] == "ok"]
    assert sorted(Path(r["input"]).stem for r in ok) == names, "an input protected twice or never"
    assert sorted(p.name for p in out.rglob("*.protected.png")) == [
        f"{n}.protected.png" for n in names
    ]
    for r in ok:
        png = out / r["output"]
        assert sha256_file(png) == r["output_sha256"] and (out / r["sidecar"]).is_file()
        a = np.asarray(Image.open(src / f"{Path(r['input']).name}").convert("RGB"), dtype=int)
        b = np.asarray(Image.open(png).convert("RGB"), dtype=int)
        assert a.shape == b.shape and 0 < np.abs(a - b).max() <= budget_255
    assert not list(out.rglob("*.tmp")), "a temporary file survived"
    return ok


def _worker_pids() -> dict[int, str]:
    """Live ProtectWorker actors of the runtime: pid -> actor id."""
    table = ray._private.state.actors()
    return {
        a["Pid"]: actor_id
        for actor_id, a in table.items()
        if a["ActorClassName"] == "ProtectWorker" and a["State"] == "ALIVE" and a["Pid"]
    }


# ----------------------------------------------------------------------------- the plain run
def test_two_actors_protect_every_image_once_and_bad_file_is_reported(runtime, tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = _folder(src)
    (src / "zz-bad.jpg").write_text("I am not a JPEG\n")
    cfg = build_config("debug", steps=STEPS)
    events = []
    res = run_ray_batch([src], out, cfg, num_workers=2, callback=events.append)
    assert res.exit_code == 1 and res.count("ok") == N and res.count("failed") == 1
    assert [Path(r.input).stem for r in res.items] == [*names, "zz-bad"]  # input order
    assert "not an image" in res.items[-1].error
    ok = _exactly_once(src, out, names)
    assert len({r["run"] for r in ok}) == 1 and all(r["config_hash"] == res.config_hash for r in ok)
    failed = [r for r in read_manifest(out / MANIFEST) if r["status"] == "failed"]
    assert len(failed) == 1 and failed[0]["input"].endswith("zz-bad.jpg")
    assert sum(e.kind == "done" for e in events) == N + 1
    assert sum(e.kind == "start" for e in events) == N + 1
    # the same bytes as the plain batch runner with the same config (one loaded model, no Ray)
    plain = run_batch([src / "p00.png", src / "p03.png"], tmp_path / "plain", cfg, lambda: _tiny())
    for r in plain.items:
        assert sha256_file(r.output) == sha256_file(out / Path(r.output).name)
    # again, the bad file gone: everything is skipped by the driver, no actor is even started
    (src / "zz-bad.jpg").unlink()
    actors_before = len(ray._private.state.actors())
    again = run_ray_batch([src], out, cfg, num_workers=2)
    assert again.count("skipped") == N and again.exit_code == 0
    assert len(ray._private.state.actors()) == actors_before
    _exactly_once(src, out, names)


def _tiny():
    from stillguard.adapters import load_adapter

    return load_adapter("cogvideox-i2v", model="tiny")


def test_without_ray_installed_import_works_and_ray_run_says_what_to_install(tmp_path):
    code = (
        "import sys; sys.modules['ray'] = None\n"
        "import stillguard, stillguard.cli, stillguard.app.run.cluster, stillguard.cli._ray\n"
        "from stillguard.app.run import run_ray_batch\n"
        "from stillguard.app.config import build_config\n"
        "try:\n"
        f"    run_ray_batch([{str(tmp_path / 'in')!r}], {str(tmp_path / 'out')!r}, build_config('debug'))\n"
        "except Exception as e:\n"
        "    print(type(e).__name__, e)\n"
    )
    _folder(tmp_path / "in", n=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    res = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert res.returncode == 0, res.stderr
    assert res.stdout.startswith("InputError") and "stillguard[dist]" in res.stdout


def test_object_store_urls_are_refused_with_a_reason(tmp_path):
    from stillguard.errors import InputError

    with pytest.raises(InputError, match="object stores are not supported"):
        run_ray_batch(["s3://bucket/photos"], tmp_path / "out", build_config("debug"))
    with pytest.raises(InputError, match="object stores are not supported"):
        run_ray_batch([tmp_path], "gs://bucket/out", build_config("debug"))


def test_cli_ray_needs_an_output_folder_and_a_reachable_cluster(tmp_path):
    src = tmp_path / "in"
    _folder(src, n=1)
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    base = [sys.executable, "-m", "stillguard.cli", "protect", str(src), "--model", "tiny"]
    png = subprocess.run([*base, "-o", str(tmp_path / "x.png"), "--ray", "local"], env=env,
                         capture_output=True, text=True, timeout=120)  # fmt: skip
    assert png.returncode == 2 and "give one" in png.stderr and "Traceback" not in png.stderr
    far = subprocess.run([*base, "-o", str(tmp_path / "out"), "--ray", "127.0.0.1:9"], env=env,
                         capture_output=True, text=True, timeout=300)  # fmt: skip
    assert far.returncode == 2 and "cannot connect to the Ray cluster at 127.0.0.1:9" in far.stderr
    assert not list((tmp_path / "out").glob("*.png"))


def test_groups_hold_inputs_of_one_size_batch_size_at_most(tmp_path):
    """The Ray driver's grouping: by the header's size, before any input is read."""
    from stillguard.app.run import collect
    from stillguard.app.run.groups import by_size, header_size

    src = tmp_path / "in"
    src.mkdir()
    for i, size in enumerate([(40, 32), (64, 48), (40, 32), (40, 32), (64, 48)]):
        Image.fromarray(rand_image(size[1], size[0], seed=i)).save(src / f"p{i}.png")
    (src / "p5.png").write_text("broken")
    items = collect([src], tmp_path / "out")

    def key(i: int):
        return header_size(items[i].input)

    assert by_size(range(6), 1, key) == [[0], [1], [2], [3], [4], [5]]
    assert by_size(range(6), 2, key) == [[0, 2], [1, 4], [3], [5]]  # full ones first
    assert by_size([1, 2, 3], 8, key) == [[1], [2, 3]]


def test_worker_protects_a_group_with_one_protect_batch_call(tmp_path, monkeypatch):
    """The actor class in this process (no Ray): a job of 2 readable inputs is one pass."""
    import json

    import stillguard.loop
    from stillguard.app.run.ray_worker import ProtectWorker

    src, out = tmp_path / "in", tmp_path / "out"
    names = _folder(src, n=2)
    (src / "zz-bad.png").write_text("broken")
    real, calls = stillguard.loop.protect_batch, []

    def spy(images, *a, **k):
        calls.append(len(images))
        return real(images, *a, **k)

    monkeypatch.setattr(stillguard.loop, "protect_batch", spy)
    worker = ProtectWorker(build_config("debug", steps=STEPS))
    jobs = [(i, str(src / f"{n}.png"), str(out / f"{n}.protected.png"),
             str(out / f"{n}.protected.json")) for i, n in enumerate([*names, "zz-bad"])]  # fmt: skip
    res = worker.protect(jobs)
    assert [i for i, _ in res] == [0, 1, 2] and calls == [2]
    assert [r["status"] for _, r in res] == ["ok", "ok", "failed"]
    for n in names:
        side = json.loads((out / f"{n}.protected.json").read_text())
        assert side["config"]["batch_size"] == 2


@pytest.mark.slow
def test_batch_size_on_ray_gives_what_one_at_a_time_gives(runtime, tmp_path):
    src = tmp_path / "in"
    names = _folder(src, n=4)
    cfg = build_config("debug", steps=STEPS)
    one = run_ray_batch([src], tmp_path / "one", cfg, num_workers=2)
    two = run_ray_batch([src], tmp_path / "two", cfg, num_workers=2, batch_size=2)
    assert one.count("ok") == two.count("ok") == 4 and one.config_hash == two.config_hash
    _exactly_once(src, tmp_path / "two", names)
    for a, b in zip(one.items, two.items, strict=True):
        x = np.asarray(Image.open(a.output), dtype=int)
        y = np.asarray(Image.open(b.output), dtype=int)
        d = np.abs(x - y)
        assert d.max() <= 3 and (d > 0).mean() <= 0.01  # float rounding of batched kernels
    resumed = run_ray_batch([src], tmp_path / "one", cfg, num_workers=2, batch_size=3)
    assert resumed.count("skipped") == 4  # the batch size is not part of the run hash


# ----------------------------------------------------------------------------- a killed actor
def _run_killing_an_actor(tmp_path: Path, kill_after: int) -> None:
    """Run 10 images on 2 actors; SIGKILL one actor's process when ``kill_after`` are done
    (0: when the first job is sent)."""
    src, out = tmp_path / "in", tmp_path / "out"
    names = _folder(src, size=(64, 48))
    killed: list[str] = []  # actor id
    seen: list[int] = []
    started: list[int] = []
    in_flight: list[int] = []

    def on_event(ev) -> None:
        if ev.kind == "done":
            seen.append(ev.index)
        if ev.kind == "start":
            started.append(ev.index)
        moment = ev.kind == "start" if kill_after == 0 else ev.kind == "done"
        if moment and not killed and len(seen) == kill_after:
            pid, actor_id = sorted(_worker_pids().items())[0]
            in_flight.append(len(started) - len(seen))
            os.kill(pid, signal.SIGKILL)
            killed.append(actor_id)

    res = run_ray_batch([src], out, build_config("debug", steps=STEPS), num_workers=2,
                        callback=on_event, max_restarts=3, max_task_retries=3)  # fmt: skip
    assert killed, "the kill did not happen"
    assert len(seen) == N and res.exit_code == 0 and res.count("ok") == N
    _exactly_once(src, out, names)
    # the driver sent every input once, so the jobs the killed actor held were re-sent by Ray:
    # with 3 or more jobs out (2 at most per actor), each of the 2 actors held one; killed at the
    # first job sent, the actor receives its jobs while Ray restarts it
    assert sorted(started) == list(range(N))
    if 0 < kill_after <= N - 4:
        assert in_flight[0] >= 3, in_flight
    # Ray must restart the killed actor when it held a job (3 or more out) or is sent the next
    # ones (killed at the first job); killed with one job left, that job may be the other actor's
    # and the run can end before Ray notices the death, so nothing is asserted of the restart then
    if kill_after == 0 or in_flight[0] >= 3:
        assert ray._private.state.actors()[killed[0]]["NumRestarts"] >= 1, "Ray did not restart it"


def test_actor_sigkill_mid_run_still_every_image_once(runtime, tmp_path):
    _run_killing_an_actor(tmp_path, kill_after=3)


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0, 6, 9])
def test_actor_sigkill_at_other_moments(runtime, tmp_path, kill_after):
    _run_killing_an_actor(tmp_path, kill_after)


# ----------------------------------------------------------------------------- a killed driver
def _cli(src: Path, out: Path, address: str) -> list[str]:
    return [sys.executable, "-m", "stillguard.cli", "protect", str(src), "-o", str(out),
            "--preset", "debug", "--steps", "6", "--ray", address, "--workers", "2", "--json"]  # fmt: skip


def _kill_driver_then_rerun(tmp_path: Path, address: str, kill_at: int) -> None:
    """Run the CLI; SIGKILL it once ``kill_at`` manifest lines exist; run the same command again."""
    src, out = tmp_path / "in", tmp_path / "out"
    names = _folder(src, size=(96, 64))
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    cmd = _cli(src, out, address)
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
                            start_new_session=True)  # fmt: skip
    own_runtime = address == "local"
    watch = SessionWatch(proc) if own_runtime else None
    try:
        deadline = time.monotonic() + 240
        while len(read_manifest(out / MANIFEST)) < kill_at and time.monotonic() < deadline:
            assert proc.poll() is None, "the run ended before the kill"
            time.sleep(0.02)
        os.kill(proc.pid, signal.SIGKILL)
    finally:
        proc.wait(30)
    killed_at = len([r for r in read_manifest(out / MANIFEST) if r["status"] == "ok"])
    assert kill_at <= killed_at < N, "the kill did not land mid-run"
    # the killed driver's own runtime goes too (its reaper stops the agents Ray leaves)
    left = watch.left(within=30) if watch else []
    try:
        again = subprocess.run(cmd, env=env, capture_output=True, text=True, timeout=300)
    finally:
        if left:  # not to the next tests
            try:
                os.killpg(proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    assert not left, f"a SIGKILLed driver's local runtime left: {left}"
    assert again.returncode == 0, again.stderr
    import json

    summary = json.loads(again.stdout)
    assert summary["skipped"] + summary["ok"] == N and summary["skipped"] >= killed_at
    _exactly_once(src, out, names)


@pytest.mark.slow
def test_driver_sigkill_then_same_command_again(runtime, tmp_path):
    """The driver connects to the running cluster (the module's runtime) by its address."""
    _kill_driver_then_rerun(tmp_path, runtime, kill_at=3)


@pytest.mark.slow
@pytest.mark.parametrize("kill_at", [1, 7])
def test_driver_sigkill_at_other_moments(runtime, tmp_path, kill_at):
    _kill_driver_then_rerun(tmp_path, runtime, kill_at)


@pytest.mark.slow
def test_driver_sigkill_with_its_own_local_runtime(tmp_path):
    """``--ray local``: the killed driver had started the runtime; no process of it is left (its
    reaper stops the agents Ray leaves); the rerun starts a new one."""
    _kill_driver_then_rerun(tmp_path, "local", kill_at=4)
