"""`stillguard protect ... --ray local` leaves no process behind and prints only its own lines
(issue 26, items 7 and 8; items 9 and 10 on the Ray executor).

Each test is one real CLI run with its own local Ray runtime, started in a session of its own;
:class:`helpers.SessionWatch` records every process of that session and its descendants while it
runs (Ray's head processes, agents and workers) and checks that none is left afterwards. Slow:
30-90 s a run on a loaded 2-core machine. A driver killed with SIGKILL is
``tests/test_ray.py::test_driver_sigkill_with_its_own_local_runtime``.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path

import pytest
from helpers import SessionWatch, rand_image
from PIL import Image

pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[dev]'")

#: the beginnings of stillguard's own lines on stderr
OURS = ("ok", "failed", "skipped", "ignored", "error:", "warning:", "note:")
#: a line of Ray's loggers ("2026-01-01 10:00:00,000\tWARNING worker.py:123 -- ...")
RAY_LINE = re.compile(r"(INFO|WARNING|ERROR) [\w.]+\.py:\d+ -- ")
#: seconds that what a run started may take to go, once the command has returned
GRACE = 15.0


def _folder(tmp_path: Path, n: int = 5) -> Path:
    """``in/``: n photos (one named with a newline), a broken file named with a newline and a link
    to a photo outside the folder."""
    src = tmp_path / "in"
    src.mkdir()
    for i in range(n):
        name = "a\nb.png" if i == 0 else f"p{i}.png"
        Image.fromarray(rand_image(48, 64, seed=i)).save(src / name)
    (src / "c\nd.png").write_text("not a photo")
    (tmp_path / "outside").mkdir()
    secret = tmp_path / "outside" / "secret.png"
    Image.fromarray(rand_image(48, 64, seed=99)).save(secret)
    (src / "link.png").symlink_to(secret)
    return src


def _start(src: Path, out: Path, *extra: str) -> subprocess.Popen:
    cmd = [sys.executable, "-m", "stillguard.cli", "protect", str(src), "-o", str(out), "--model",
           "tiny", "--steps", "8", "--ray", "local", "--workers", "1", *extra]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    for k in [k for k in env if k.startswith("RAY_") and k != "RAY_USAGE_STATS_ENABLED"]:
        del env[k]  # what a user's shell has: none of Ray's switches
    return subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, start_new_session=True)  # fmt: skip


def _when_protecting(action):
    """``on_poll`` for :class:`SessionWatch`: ``action(pid)`` once, when the Ray worker is busy."""
    done: list[int] = []

    def on_poll(members):
        for pid, cmd in members:
            if not done and cmd.startswith("ray::ProtectWorker.protect"):
                action(pid)
                done.append(pid)

    on_poll.done = done
    return on_poll


@pytest.mark.slow
def test_worker_killed_nothing_left_only_our_lines_names_escaped(tmp_path):
    """A worker SIGKILLed mid-run (Ray restarts it and sends its job again); the run ends normally
    (exit 1: one broken file)."""
    src = _folder(tmp_path)
    out = tmp_path / "out\nput"
    proc = _start(src, out)
    kill = _when_protecting(lambda pid: os.kill(pid, signal.SIGKILL))
    watch = SessionWatch(proc, kill)
    try:
        stdout, stderr = proc.communicate(timeout=600)
        left = watch.left(GRACE)
    finally:
        watch.kill_left()
    assert kill.done, "the worker was never seen protecting"
    assert proc.returncode == 1, stderr
    assert left == [], "processes of the run are still there"
    # 7: the local runtime listened on the loopback address only
    raylets = [c for c in watch.seen.values() if "raylet/raylet" in c]
    assert raylets and all("--node_ip_address=127.0.0.1" in c for c in raylets), raylets
    # 8: only our lines, no colour codes, stdout the summary alone
    assert "\x1b" not in stdout + stderr
    for line in stderr.splitlines():
        assert line.startswith(OURS) and not RAY_LINE.search(line), f"not ours: {line!r}"
    # 9, 10: the link skipped with its line; names escaped in the lines and the summary
    lines = stderr.splitlines()
    assert f"skipped {src / 'link.png'}: a link to outside the folder (use --follow-symlinks " \
           "to follow it)" in lines, stderr  # fmt: skip
    broken = repr(str(src / "c\nd.png"))
    assert any(ln.startswith(f"failed  {broken}: ") for ln in lines), stderr
    (summary,) = stdout.splitlines()
    manifest = repr(str(out / "manifest.jsonl"))
    assert summary == f"5 protected, 0 already done, 1 failed, manifest {manifest}"
    assert not (out / "secret.protected.png").exists() and not (out / "link.protected.png").exists()


@pytest.mark.slow
def test_interrupted_driver_nothing_left_and_verbose_shows_rays_lines(tmp_path):
    """The driver stopped with an error (Ctrl-C, SIGINT) while a worker protects; ``--verbose``."""
    src = _folder(tmp_path, n=8)
    proc = _start(src, tmp_path / "out", "--verbose")
    stop = _when_protecting(lambda pid: os.kill(proc.pid, signal.SIGINT))
    watch = SessionWatch(proc, stop)
    try:
        stdout, stderr = proc.communicate(timeout=600)
        left = watch.left(GRACE)
    finally:
        watch.kill_left()
    assert stop.done, "the worker was never seen protecting"
    assert proc.returncode == 130 and "error: interrupted" in stderr.splitlines(), stderr
    assert left == [], "processes of the run are still there"
    assert RAY_LINE.search(stderr), f"--verbose shows Ray's own lines: {stderr}"
