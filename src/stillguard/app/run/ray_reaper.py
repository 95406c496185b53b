"""Stop every process a local Ray runtime started once its driver is gone, however it went.

``ray.shutdown()`` stops a local runtime when the driver ends normally or with an exception. A
driver that is killed (SIGKILL, the OOM killer, a closed terminal) cannot: Ray's head processes
die with it (kernel fate-sharing), but its per-node agents (``ray::DashboardAgent``,
``ray::RuntimeEnvAgent``) stay (seen on Ray 2.60: still there minutes later; they wait for the
dead GCS). This reaper is a small process the driver starts before the runtime
(:func:`.ray_runtime.runtime`); it

* notes the driver's children that are there already (none of them is the runtime's) and says
  ``ready`` on its stdout; the driver waits for that line before it starts the runtime;
* reads its stdin, the driver's end of a pipe: end of file means the driver closed it (the
  runtime was shut down) or died;
* meanwhile, every :data:`POLL` seconds, records the process tree under the driver's children that
  appeared after the reaper started and whose command line is Ray's (under Ray's package folder:
  ``gcs_server``, ``raylet``, the monitors; the agents and workers are the raylet's children),
  each by process id and start time, so that a reused process id is never touched and nothing
  else of the driver's (a caller's own subprocesses) is;
* then sends SIGTERM to every recorded process still alive, SIGKILL after :data:`GRACE` seconds
  to what is left, and exits.

It imports nothing but the standard library (run from this file's path, it loads neither
stillguard nor Ray) and ignores SIGINT and SIGHUP, which reach it with the driver from a terminal.
Linux only (``/proc``); elsewhere it is not started and ``ray.shutdown()`` is all there is.
"""

from __future__ import annotations

import os
import signal
import sys
import threading
import time

#: seconds between two looks at the process tree
POLL = 0.5
#: seconds between SIGTERM and SIGKILL
GRACE = 2.0


def available() -> bool:
    """Can the reaper see processes here (Linux ``/proc``)?"""
    return sys.platform.startswith("linux") and os.path.exists("/proc/self/stat")


def _table() -> dict[int, tuple[int, int]]:
    """pid -> (parent pid, start time) of every live process (zombies left out)."""
    rows = {}
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/stat", "rb") as f:
                    stat = f.read().decode("ascii", "replace")
            except OSError:
                continue
            fields = stat[stat.rindex(")") + 2 :].split()
            if fields[0] != "Z":
                rows[int(d)] = (int(fields[1]), int(fields[19]))
    return rows


def _cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode("utf-8", "replace")
    except OSError:
        return ""


class Tracker:
    """The processes of the runtime: Ray's new children of ``driver`` and their descendants."""

    def __init__(self, driver: int, ray_dir: str) -> None:
        self.driver, self.ray_dir, self.me = driver, ray_dir, os.getpid()
        rows = _table()
        self.before = {(p, r[1]) for p, r in rows.items() if r[0] == driver}  # not the runtime's
        self.seen: set[tuple[int, int]] = set()

    def look(self) -> None:
        """Record the runtime's processes alive now."""
        rows = _table()
        mine = {p for p, start in self.seen if rows.get(p, (0, -1))[1] == start}
        for pid, (parent, start) in rows.items():
            key = (pid, start)
            new_child = parent == self.driver and pid != self.me and key not in self.before
            if new_child and key not in self.seen and self.ray_dir in _cmdline(pid):
                mine.add(pid)
        grew = True
        while grew:  # every descendant of a recorded process
            new = {p for p, r in rows.items() if r[0] in mine and p not in mine}
            mine |= new
            grew = bool(new)
        self.seen |= {(p, rows[p][1]) for p in mine if p in rows}

    def alive(self) -> list[int]:
        rows = _table()
        return [p for p, start in self.seen if rows.get(p, (0, -1))[1] == start]

    def stop(self) -> None:
        """SIGTERM to what is alive; SIGKILL after :data:`GRACE` seconds to what is left."""
        self.look()
        for sig, wait in ((signal.SIGTERM, GRACE), (signal.SIGKILL, 0.0)):
            for pid in self.alive():
                try:
                    os.kill(pid, sig)
                except OSError:
                    pass
            deadline = time.monotonic() + wait
            while self.alive() and time.monotonic() < deadline:
                time.sleep(0.05)


def main(argv: list[str]) -> int:
    """``ray_reaper.py DRIVER_PID RAY_PACKAGE_DIR``: stdin the driver's pipe; says ``ready``."""
    for sig in (signal.SIGINT, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    tracker = Tracker(int(argv[0]), argv[1])
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    gone = threading.Event()

    def wait_for_eof() -> None:
        try:
            while os.read(0, 4096):
                pass
        except OSError:
            pass
        finally:
            gone.set()

    threading.Thread(target=wait_for_eof, daemon=True).start()
    while not gone.wait(POLL):
        tracker.look()
    tracker.stop()
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
