"""The reaper of a local Ray runtime (``app/run/ray_reaper.py``, issue 26 item 7), without Ray.

A stand-in driver starts the reaper, then a process whose command line names a stand-in "Ray"
folder (as ``gcs_server`` and ``raylet`` do) with a child of its own (as the raylet's agents),
and another child that is not Ray's. The driver is SIGKILLed: the "Ray" processes go, the other
child is left alone, the reaper exits. The real thing, with Ray: ``tests/test_ray.py``
(``test_driver_sigkill_with_its_own_local_runtime``) and ``tests/test_ray_hygiene.py``.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from helpers import SessionWatch

from stillguard.app.run import ray_reaper

SLEEP = "import time; time.sleep(300)"
RAYS = ("raylet", "agent", "ray_reaper")  # what must go
DRIVER = f"""
import os, subprocess, sys, time
reaper, fake_ray = sys.argv[1], sys.argv[2]
def start(code, *args, **kw):
    return subprocess.Popen([sys.executable, "-c", code, *args], **kw)
before = start({SLEEP!r}, "before")
# as ray_runtime: start the reaper, keep its pipe open while this process lives, wait for "ready"
keep = subprocess.Popen([sys.executable, "-I", reaper, str(os.getpid()), fake_ray],
                        stdin=subprocess.PIPE, stdout=subprocess.PIPE)
assert keep.stdout.readline() == b"ready\\n"
head = "import subprocess, sys; subprocess.Popen([sys.executable, '-c', {SLEEP!r}, 'agent']); "
start(head + {SLEEP!r}, fake_ray + "raylet")  # names Ray's folder, has a child
start({SLEEP!r}, "not-ray")
time.sleep(300)
"""


def _named(watch: SessionWatch, word: str) -> list[int]:
    return [pid for (pid, _), cmd in watch.seen.items() if cmd.endswith(word)]


def test_a_killed_driver_leaves_no_ray_process_and_nothing_else_is_touched(tmp_path):
    assert ray_reaper.available()
    fake_ray = str(tmp_path / "site-packages" / "ray") + os.sep
    proc = subprocess.Popen([sys.executable, "-c", DRIVER, ray_reaper.__file__, fake_ray],
                            start_new_session=True)  # fmt: skip
    watch = SessionWatch(proc)
    try:
        deadline = time.monotonic() + 60
        while not all(_named(watch, w) for w in ("agent", "not-ray", "before", "raylet")):
            assert time.monotonic() < deadline, watch.seen
            time.sleep(0.1)
        time.sleep(4 * ray_reaper.POLL + 1)  # the reaper has looked since (a loaded machine)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(30)
        deadline = time.monotonic() + 15
        while True:  # the reaper's SIGTERM, then SIGKILL after its grace time
            left = " ".join(watch.left(within=0))
            if not any(w in left for w in RAYS) or time.monotonic() > deadline:
                break
            time.sleep(0.2)
        assert "raylet" not in left and "agent" not in left, left
        assert "not-ray" in left and "before" in left, left  # not Ray's: left alone
        assert "ray_reaper" not in left, "the reaper did not exit"
    finally:
        watch.kill_left()


def test_the_reaper_reads_no_more_than_the_standard_library():
    src = Path(ray_reaper.__file__).read_text()
    imports = {ln.split()[1] for ln in src.splitlines() if ln.startswith(("import ", "from "))}
    assert imports <= {"__future__", "os", "signal", "sys", "threading", "time"}, imports
