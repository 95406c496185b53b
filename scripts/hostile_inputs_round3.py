"""Issue 26's rows of ``docs/hostile-inputs.md``: one file name in three folders on Ray, bounded
numbers, limits, memory units, GPS, what ``--ray local`` leaves behind and prints, links out of a
folder, escaped names, ``web --no-calibrate``, lossy re-saving, HEIC. Run by
``scripts/hostile_inputs.py``; the ``--ray local`` rows take a minute or more each.

Each row builds its files in a temporary folder, runs the real CLI in a subprocess and checks what
must hold afterwards (the exit code, nothing written for a refusal, the files and EXIF written
otherwise); ``(CHECK FAILED)`` marks a broken row. The unit tests are in
``tests/test_reliability_round3.py``, ``tests/test_run_paths.py`` (2), ``tests/test_ray.py``,
``tests/test_ray_reaper.py`` and ``tests/test_ray_hygiene.py`` (7, 8), ``tests/test_batch_links.py``
(9).
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import numpy as np
from hostile_inputs_round12 import FAST, _good, run_rows
from PIL import Image

BIG = "100000000"
GPS = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 0.0)}
NO_SERVE = (  # the real CLI with the page's serve() replaced: the start-up lines, no server
    "import sys, stillguard.web as w; w.serve = lambda *a, **k: None; sys.argv[0] = 'stillguard'\n"
    "from stillguard.cli import main; main()"
)
KILL = (  # the real CLI in a session of its own; SIGKILL its Ray worker (or itself) mid-run
    "import os, signal, subprocess, sys, time\n"
    "what = sys.argv[1]\n"
    "p = subprocess.Popen([sys.executable, '-m', 'stillguard.cli', *sys.argv[2:]], "
    "start_new_session=True)\n"
    "def session():\n"
    "    out = {}\n"
    "    for d in filter(str.isdigit, os.listdir('/proc')):\n"
    "        try:\n"
    "            s, c = open(f'/proc/{d}/stat').read(), open(f'/proc/{d}/cmdline', 'rb').read()\n"
    "        except OSError:\n"
    "            continue\n"
    "        f = s[s.rindex(')') + 2:].split()\n"
    "        if int(f[3]) == p.pid and f[0] != 'Z':\n"
    "            out[int(d)] = c\n"
    "    return out\n"
    "seen, killed = set(), False\n"
    "while p.poll() is None:\n"
    "    now = session(); seen |= set(now)\n"
    "    busy = [k for k, c in now.items() if c.startswith(b'ray::ProtectWorker.protect')]\n"
    "    if busy and not killed:\n"
    "        os.kill(p.pid if what == 'driver' else busy[0], signal.SIGKILL); killed = True\n"
    "    time.sleep(0.1)\n"
    "deadline = time.monotonic() + 30\n"
    "while session() and time.monotonic() < deadline:\n"
    "    time.sleep(0.5)\n"
    "left = session()\n"
    "print(f'(script) the {what} SIGKILLed mid-run: {killed}; processes of the run still there '\n"
    "      f'(waited up to 30 s): {len(left)} of {len(seen)}', file=sys.stderr)\n"
    "[os.kill(k, signal.SIGKILL) for k in left]\n"
    "sys.exit(p.returncode if p.returncode >= 0 else 128 - p.returncode)\n"
)
RAY = ["--ray", "local", "--workers", "1"]


def _exif(orientation: int = 1) -> bytes:
    exif = Image.Exif()
    exif[0x010F], exif[0x0110], exif[0x0112] = "Acme", "Phone 1", orientation
    exif[0x8825] = dict(GPS)
    return exif.tobytes()


def _gps_jpeg(path: Path) -> None:
    Image.open(_good(path.with_name("src.png"))).save(path, "JPEG", exif=_exif())


def _heic(path: Path) -> None:
    import pillow_heif

    pillow_heif.register_heif_opener()
    arr = np.zeros((32, 48, 3), np.uint8)
    arr[:, :24] = 255  # left half white; orientation 6 puts it on top
    Image.fromarray(arr).save(path, format="HEIF", exif=_exif(6), quality=95)


def _png_facts(png: Path) -> str:
    with Image.open(png) as im:
        exif = im.getexif()
        top = np.asarray(im.convert("L"))[: im.height // 2].mean()
        gps = "GPS kept" if exif.get_ifd(0x8825) else "no GPS"
        return (
            f"PNG {im.width}x{im.height}, top half mean {top:.0f}, Make={exif.get(0x010F)}, {gps}"
        )


def _upright_without_gps(png: Path) -> bool:
    with Image.open(png) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32)
        gps = im.getexif().get_ifd(0x8825)
    return arr.shape == (48, 32) and arr[:24].mean() > 200 > 55 > arr[24:].mean() and not gps


def _passwd(path: Path) -> None:
    path.symlink_to("/etc/passwd")


def _three_kept(t: Path, r: subprocess.CompletedProcess) -> bool:
    """Three outputs; each ``ok`` manifest line's output SHA-256 is its file's."""
    import json

    from stillguard.files import sha256_file

    lines = [json.loads(ln) for ln in (t / "out/manifest.jsonl").read_text().splitlines()]
    ok = [rec for rec in lines if rec["status"] == "ok"]
    intact = all(sha256_file(t / "out" / rec["output"]) == rec["output_sha256"] for rec in ok)
    return len(ok) == 3 and len(list((t / "out").glob("*.png"))) == 3 and intact


def _rays(text: str) -> list[str]:
    """Lines of Ray's own (its loggers' format, its colour codes, its ``(raylet)`` prefix)."""
    ray = re.compile(r"(INFO|WARNING|ERROR) [\w.]+\.py:\d+ -- |\x1b\[|^(INFO: )?\(raylet\)")
    return [ln for ln in text.splitlines() if ray.search(ln)]


REFUSED = lambda t, r: r.returncode == 2 and not (t / "out").exists()  # noqa: E731
LEFT_NONE = ": True; processes of the run still there (waited up to 30 s): 0 of"
NOTHING_LEFT = lambda t, r: LEFT_NONE in r.stderr  # noqa: E731
OK = lambda t, r: r.returncode == 0  # noqa: E731
P = ["protect", "{t}/a.png", "-o", "{t}/out", *FAST]
# name -> ({file under TMP: maker}, the command ({t} = TMP), check(t, result))
ROWS = {
    "2 three folders, each holding `IMG_0001.png`, into one OUT with `--ray local`, one after "
    "the other": ({f"{d}/IMG_0001.png": (lambda p, k=k: _good(p, size=(64 + 8 * k, 48)))
                   for k, d in enumerate("abc")},
        [["protect", f"{{t}}/{d}", "-o", "{t}/out", *FAST, *RAY] for d in "abc"], _three_kept),
    "3 `plan --target cogvideox-i2v --batch-size 100000000`": ({},
        ["plan", "--target", "cogvideox-i2v", "--batch-size", BIG], REFUSED),
    "3 `plan --rungs resolution=100000x100000`": ({},
        ["plan", "--rungs", "resolution=100000x100000"], REFUSED),
    "3 `protect --steps 100000000`": ({"a.png": _good}, [*P, "--steps", BIG], REFUSED),
    "3 `protect --set protect.eot_samples=100000`": ({"a.png": _good},
        [*P, "--set", "protect.eot_samples=100000"], REFUSED),
    "3 `protect --set method.max_queries=1000000000`": ({"a.png": _good},
        [*P, "--set", "method.max_queries=1000000000"], REFUSED),
    "3 `protect --ray local --workers 100000000`": ({"a.png": _good},
        [*P, "--ray", "local", "--workers", BIG], REFUSED),
    "3 `verify --seeds 0,1,...,99`": ({"a.png": _good},
        ["verify", "{t}/a.png", "{t}/a.png", "--model", "tiny", "--seeds",
         ",".join(map(str, range(100)))], REFUSED),
    "3 `demo --steps 100000000`": ({}, ["demo", "--steps", BIG, "--out", "{t}/out"], REFUSED),
    "3 `web --max-photos 100000000`": ({}, ["web", "--model", "tiny", "--max-photos", BIG],
        REFUSED),
    "4 `protect --max-pixels 0`": ({"a.png": _good}, [*P, "--max-pixels", "0"], REFUSED),
    "4 `web --max-pixels -5`": ({}, ["web", "--model", "tiny", "--max-pixels", "-5"], REFUSED),
    "5 `protect --gpu-memory 1KB`": ({"a.png": _good}, [*P, "--gpu-memory", "1KB"], REFUSED),
    "5 `plan --ladder --gpu-memory 1GiB`": ({}, ["plan", "--ladder", "--gpu-memory", "1GiB"],
        REFUSED),
    "5 `protect --gpu-memory 80GB` (the planned line)": ({"a.png": _good},
        [*P, "--gpu-memory", "80GB"], OK),
    "6 JPEG with GPS, `--keep-metadata`": ({"a.jpg": _gps_jpeg},
        ["protect", "{t}/a.jpg", "-o", "{t}/p.png", *FAST, "--keep-metadata"],
        lambda t, r: OK(t, r) and "no GPS" in _png_facts(t / "p.png")),
    "6 JPEG with GPS, `--keep-metadata --keep-gps`": ({"a.jpg": _gps_jpeg},
        ["protect", "{t}/a.jpg", "-o", "{t}/p.png", *FAST, "--keep-metadata", "--keep-gps"],
        lambda t, r: OK(t, r) and "GPS kept" in _png_facts(t / "p.png")),
    "6 `--keep-gps` without `--keep-metadata`": ({"a.jpg": _gps_jpeg},
        ["protect", "{t}/a.jpg", "-o", "{t}/out", *FAST, "--keep-gps"], REFUSED),
    "7, 8 `--ray local`, its worker SIGKILLed mid-run (by a script)": ({"in/a.png": _good,
        "in/b.png": _good}, ["-c", KILL, "worker", "protect", "{t}/in", "-o", "{t}/out",
        "--model", "tiny", "--steps", "8", *RAY], lambda t, r: OK(t, r) and NOTHING_LEFT(t, r)
        and not _rays(r.stderr + r.stdout)),
    "7 `--ray local`, the driver itself SIGKILLed mid-run (by a script)": ({"in/a.png": _good,
        "in/b.png": _good}, ["-c", KILL, "driver", "protect", "{t}/in", "-o", "{t}/out",
        "--model", "tiny", "--steps", "8", *RAY], lambda t, r: r.returncode == 137
        and NOTHING_LEFT(t, r)),
    "8 `--ray local --verbose`": ({"in/a.png": _good}, ["protect", "{t}/in", "-o", "{t}/out",
        *FAST, *RAY, "--verbose"], lambda t, r: OK(t, r) and _rays(r.stderr)),
    "9 folder holding `a.png` and `passwd.png`, a link to `/etc/passwd`": ({"in/a.png": _good,
        "in/passwd.png": _passwd}, ["protect", "{t}/in", "-o", "{t}/out", *FAST],
        lambda t, r: OK(t, r) and len(list((t / "out").glob("*.png"))) == 1),
    "9 the same with `--follow-symlinks`": ({"in/a.png": _good, "in/passwd.png": _passwd},
        ["protect", "{t}/in", "-o", "{t}/out", *FAST, "--follow-symlinks"],
        lambda t, r: r.returncode == 1 and len(list((t / "out").glob("*.png"))) == 1),
    "10 folder holding `a\\nb.png` and `c\\x1b[31m.png`": (
        {"in/a\nb.png": _good, "in/c\x1b[31m.png": _good},
        ["protect", "{t}/in", "-o", "{t}/out", *FAST],
        lambda t, r: OK(t, r) and "\x1b" not in r.stderr and len(list((t / "out").glob("*.png"))) == 2),
    "10 a text file named `x\\ny.png`": ({"x\ny.png": lambda p: p.write_text("not a photo")},
        ["protect", "{t}/x\ny.png", "-o", "{t}/out", *FAST], REFUSED),
    "11 `web --model tiny --no-calibrate` (server start skipped)": ({},
        ["-c", NO_SERVE, "web", "--model", "tiny", "--no-calibrate"],
        lambda t, r: OK(t, r) and "timing" not in r.stderr),
    "12 a JPEG input": ({"a.jpg": _gps_jpeg}, ["protect", "{t}/a.jpg", "-o", "{t}/p.png", *FAST],
        lambda t, r: OK(t, r) and "lossy_input" in (t / "p.json").read_text()),
    "12 `-o prot.webp`": ({"a.png": _good},
        ["protect", "{t}/a.png", "-o", "{t}/prot.webp", *FAST],
        lambda t, r: r.returncode == 2 and not (t / "prot.webp").exists()),
    "12 `verify` of a protected photo re-saved as JPEG": ({"a.png": _good, "p.jpg": _gps_jpeg},
        ["verify", "{t}/a.png", "{t}/p.jpg", "--model", "tiny", "--seeds", "0", "--transforms",
         "identity"], OK),
    "13 phone HEIC (EXIF orientation 6, GPS), folder mode, `--keep-metadata`": (
        {"in/phone.heic": _heic}, ["protect", "{t}/in", "-o", "{t}/out", *FAST, "--keep-metadata"],
        lambda t, r: OK(t, r) and _upright_without_gps(t / "out/phone.protected.png")),
}  # fmt: skip


def _said(name: str, r: subprocess.CompletedProcess, t: Path) -> str:
    keep = (
        "error:",
        "warning: --",
        "warning: TMP",
        "note:",
        "ok",
        "failed",
        "planned for",
        "loading",
    )
    err = [ln for ln in r.stderr.replace(str(t), "TMP").splitlines() if ln.startswith(keep)]
    out = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if name.startswith("6 JPEG") and r.returncode == 0:
        return " / ".join(err + [_png_facts(t / "p.png")])
    if name.startswith("13 ") and r.returncode == 0:
        return " / ".join(err + out[-1:] + [_png_facts(t / "out/phone.protected.png")])
    if name.startswith("2 "):
        outs = sorted(p.name for p in (t / "out").glob("*.png"))
        outs = [re.sub(r"-[0-9a-f]{8}\.", "-HASH.", n) for n in outs]
        return " / ".join(out[-1:] + ["outputs: " + ", ".join(outs)])
    if name.startswith(("7", "8 ")):  # everything on stderr: nothing of Ray's unless --verbose
        lines = [ln for ln in r.stderr.replace(str(t), "TMP").splitlines() if ln.strip()]
        ray = _rays(r.stderr)
        if ray:
            first = re.sub(r"^[\d-]+ [\d:,]+\s+", "", ray[0].replace(str(t), "TMP"))
            lines = [ln for ln in lines if ln.startswith(keep)]
            lines.append(f"{len(ray)} lines of Ray's, the first: {first}")
        return " / ".join(lines + out[-1:])
    if name.startswith("9 "):
        return " / ".join([ln for ln in r.stderr.replace(str(t), "TMP").splitlines()
                           if ln.startswith(("skipped", *keep))] + out[-1:])  # fmt: skip
    if name.startswith("12 `verify`"):
        return " / ".join(ln for ln in err if ln.startswith("warning"))
    return " / ".join(err if r.returncode and err else err + out[-1:])


def run_round3() -> int:
    """Print issue 26's table; return how many rows failed their check."""
    rows = {
        name: (files, command if isinstance(command[0], list) else [command], check)
        for name, (files, command, check) in ROWS.items()
    }
    return run_rows(rows, "issue 26 row", _said)
