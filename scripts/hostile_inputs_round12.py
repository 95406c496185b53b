"""Feed the real `stillguard` CLI every hostile input we guard against and print what it says.

    .venv/bin/python scripts/hostile_inputs.py   # runs these rows and those of round 3

Each case is built in a temporary folder with an empty hub cache (``HF_HUB_CACHE``) and run as a
subprocess. Refusals (first table) are checked: non-zero exit, one ``error:`` line, no traceback,
nothing written to the output folder. The cases of issue 12 (second table) each have their own
check of what must hold afterwards (files written or not, sidecar contents, manifest size).
"""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
from PIL import Image


def _png_header(path: Path, w: int, h: int) -> Path:
    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
        )

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 2, 0, 0, 0)
    path.write_bytes(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IEND", b""))
    return path


def _good(path: Path, size=(64, 48)) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (size[1], size[0], 3), dtype=np.uint8)).save(path)
    return path


def _truncated(path: Path, fmt: str) -> Path:
    rng = np.random.default_rng(0)
    Image.fromarray(rng.integers(0, 255, (128, 128, 3), dtype=np.uint8)).save(path, format=fmt)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    return path


def _loop(t: Path) -> Path:
    (t / "loop.png").symlink_to(t / "loop2.png")
    (t / "loop2.png").symlink_to(t / "loop.png")
    return t / "loop.png"


def _pickle_model(t: Path) -> Path:
    d = t / "model"
    d.mkdir()
    (d / "model_index.json").write_text('{"_class_name": "CogVideoXImageToVideoPipeline"}')
    (d / "transformer").mkdir()
    (d / "transformer" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04pickle")
    return d


CASES = {
    "missing file": lambda t: ([t / "nope.png"], []),
    "0-byte file": lambda t: ([(t / "e.png").write_bytes(b"") or t / "e.png"], []),
    "truncated PNG": lambda t: ([_truncated(t / "x.png", "PNG")], []),
    "truncated JPEG": lambda t: ([_truncated(t / "x.jpg", "JPEG")], []),
    "text file named .jpg": lambda t: ([(t / "x.jpg").write_text("hello\n") and t / "x.jpg"], []),
    "SVG": lambda t: ([(t / "x.svg").write_text("<svg/>") and t / "x.svg"], []),
    "decompression bomb (100k x 100k header)": lambda t: (
        [_png_header(t / "b.png", 100_000, 100_000)],
        [],
    ),
    "symlink loop": lambda t: ([_loop(t)], []),
    "output path == input": lambda t: ([_good(t / "a.png")], ["-o", str(t / "a.png")]),
    "output folder not writable (a file)": lambda t: (
        [_good(t / "a.png")],
        ["-o", str((t / "f").write_text("x") and t / "f" / "sub")],
    ),
    "unknown method": lambda t: ([_good(t / "a.png")], ["--method", "vid-freez"]),
    "unknown target": lambda t: ([_good(t / "a.png")], ["--target", "cogvideo"]),
    "unknown preset key": lambda t: ([_good(t / "a.png")], ["--set", "protect.stpes=3"]),
    "eps out of range": lambda t: ([_good(t / "a.png")], ["--eps", "64/255"]),
    "model folder with pickle-only weights": lambda t: (
        [_good(t / "a.png")],
        ["--model", str(_pickle_model(t))],
    ),
    "model folder without weights": lambda t: (
        [_good(t / "a.png")],
        ["--model", str((t / "empty").mkdir() or t / "empty")],
    ),
    "real model not downloaded": lambda t: (
        [_good(t / "a.png")],
        ["--model", "THUDM/CogVideoX-5b-I2V"],
    ),
}


# ----------------------------------------------------------------------------- issue 12
REAL = "THUDM/CogVideoX-5b-I2V"
FAST = ["--model", "tiny", "--steps", "1"]
FULL_DISK = (  # the real CLI, with every .json write failing as on a full disk
    "import errno, os, sys; real = os.replace\n"
    "def full(a, b):\n"
    "    if str(b).endswith('.json'): raise OSError(errno.ENOSPC, 'No space left on device')\n"
    "    return real(a, b)\n"
    "os.replace = full; sys.argv[0] = 'stillguard'\n"
    "from stillguard.cli import main; main()"
)


def _exif_ascii(path: Path) -> None:
    entry = struct.pack("<HHI4s", 0x0112, 2, 4, b"top\x00")  # Orientation typed ASCII
    tiff = b"II*\x00" + struct.pack("<IH", 8, 1) + entry + struct.pack("<I", 0)
    Image.open(_good(path.with_name("src.png"))).save(path, exif=b"Exif\x00\x00" + tiff)


def _big_icc(path: Path) -> None:
    from PIL import ImageCms

    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    Image.open(_good(path.with_name("src.png"))).save(path, icc_profile=srgb + os.urandom(8 << 20))


def _partial_cache(snap: Path) -> None:  # snap: TMP/hub-cache/models--o--n/snapshots/<commit>
    snap.mkdir(parents=True)
    (snap.parent.parent / "refs").mkdir()
    (snap.parent.parent / "refs" / "main").write_text(snap.name)
    (snap / "model_index.json").write_text('{"transformer": ["diffusers", "X"], "vae": ["d", "V"]}')


def _model_height(d: Path) -> None:
    (d / "transformer").mkdir(parents=True)
    (d / "model_index.json").write_text('{"_class_name": "CogVideoXImageToVideoPipeline"}')
    (d / "transformer" / "diffusion_pytorch_model.safetensors").write_bytes(b"\0" * 16)
    (d / "stillguard.json").write_text('{"height": 100000}')


MAKE = {
    "image": _good,
    "other-image": lambda p: _good(p, size=(48, 40)),
    "fifo": os.mkfifo,
    "text": lambda p: p.write_text("not a photo"),
    "exif-ascii": _exif_ascii,
    "big-icc": _big_icc,
    "partial-cache": _partial_cache,
    "model-height": _model_height,
}
SNAP = f"hub-cache/models--THUDM--CogVideoX-5b-I2V/snapshots/{'0' * 40}"
OK = lambda t, r: r.returncode == 0  # noqa: E731
REFUSED = lambda t, r: r.returncode == 2 and not (t / "out").exists()  # noqa: E731
# name -> ({file under TMP: kind}, commands ({t} = TMP; the last is reported), check(t, result))
ROWS = {
    "1 folder with a sub-folder": ({"in/a.png": "image", "in/sub/b.png": "image"},
        [["protect", "{t}/in", "-o", "{t}/out", *FAST]],
        lambda t, r: OK(t, r) and (t / "out/sub/b.protected.png").is_file()),
    "2 a FIFO in an input folder": ({"in/a.png": "image", "in/b.png": "fifo"},
        [["protect", "{t}/in", "-o", "{t}/out", *FAST]],
        lambda t, r: r.returncode == 1 and (t / "out/a.protected.png").is_file()),
    "2 `/dev/zero` as the input": ({}, [["protect", "/dev/zero", "-o", "{t}/out", *FAST]], REFUSED),
    "3 `demo` with a real model not downloaded": ({},
        [["demo", "--model", REAL, "--out", "{t}/out"]], REFUSED),
    "3 `protect`, real model partly in the hub cache": ({"a.png": "image", SNAP: "partial-cache"},
        [["protect", "{t}/a.png", "-o", "{t}/out", "--model", REAL]], REFUSED),
    "4 `verify a.png b.png` without --model": ({"a.png": "image", "b.png": "image"},
        [["verify", "{t}/a.png", "{t}/b.png"]], REFUSED),
    "5 `-o newdir/x.png`": ({"a.png": "image"}, [["protect", "{t}/a.png", "-o", "{t}/new/x.png",
        *FAST]], lambda t, r: OK(t, r) and (t / "new/x.png").is_file()),
    "6 two cards, both `IMG_0001.jpg`, into one OUT": (
        {"cardA/IMG_0001.jpg": "image", "cardB/IMG_0001.jpg": "other-image"},
        [["protect", "{t}/" + c, "-o", "{t}/out", *FAST] for c in ("cardA", "cardB")],
        lambda t, r: len(list((t / "out").glob("IMG_0001*.protected.png"))) == 2),
    "7 folder of AVIF + a text file": ({"in/a.avif": "image", "in/notes.txt": "text"},
        [["protect", "{t}/in", "-o", "{t}/out", *FAST]],
        lambda t, r: OK(t, r) and (t / "out/a.protected.png").is_file()),
    "8 `--dtype bf16` with the toy on CPU": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/out", "--model", "toy", "--dtype", "bf16"]], REFUSED),
    "9 `--eps 0.001`": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/out", *FAST, "--eps", "0.001"]], REFUSED),
    "10 `--method noise --eps 4/255`: the sidecar's description": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/p.png", "--model", "tiny", "--method", "noise",
          "--eps", "4/255"]], lambda t, r: "noise, 4/255" in (t / "p.json").read_text()),
    "11 `stillguard env`": ({}, [["env"]], lambda t, r: "toy_model_installed: True" in r.stdout),
    "12 JPEG with an ASCII-typed EXIF Orientation": ({"x.jpg": "exif-ascii"},
        [["protect", "{t}/x.jpg", "-o", "{t}/out", *FAST]], OK),
    "12 PNG with an 8 MB ICC profile": ({"icc.png": "big-icc"},
        [["protect", "{t}/icc.png", "-o", "{t}/out", *FAST]], OK),
    "13 `--seed 99999999999999999999`": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/out", *FAST, "--seed", "9" * 20]], REFUSED),
    "13 `--set target.options.bogus=1`": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/out", *FAST, "--set", "target.options.bogus=1"]],
        REFUSED),
    "13 `--set target.options.num_frames=-1`": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/out", *FAST, "--set",
          "target.options.num_frames=-1"]], REFUSED),
    "13 model folder whose stillguard.json says height=100000": (
        {"a.png": "image", "model": "model-height"},
        [["protect", "{t}/a.png", "-o", "{t}/out", "--model", "{t}/model"]], REFUSED),
    "14 `--json` with an unknown method (stdout)": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/out", *FAST, "--method", "nope", "--json"]],
        lambda t, r: REFUSED(t, r) and json.loads(r.stdout)["exit_code"] == 2),
    "14 `--json` with a bad option value (stdout)": ({"a.png": "image"},
        [["protect", "{t}/a.png", "-o", "{t}/out", "--steps", "abc", "--json"]],
        lambda t, r: REFUSED(t, r) and json.loads(r.stdout)["exit_code"] == 2),
    "15 `verify --report` where a file blocks the folder": ({"a.png": "image", "f": "text"},
        [["verify", "{t}/a.png", "{t}/a.png", "--model", "tiny", "--report", "{t}/f/rep"]],
        REFUSED),
    "15 `demo --out` where a file blocks the folder": ({"f": "text"},
        [["demo", "--model", "tiny", "--out", "{t}/f/demo"]], REFUSED),
    "16 rerun after a killed single-file run (`.x.png.k1l2m3n4.tmp` left)": (
        {"a.png": "image", ".x.png.k1l2m3n4.tmp": "text"},
        [["protect", "{t}/a.png", "-o", "{t}/x.png", *FAST]],
        lambda t, r: OK(t, r) and not (t / ".x.png.k1l2m3n4.tmp").exists()),
    "17 `-o prot.jpg`": ({"a.png": "image"}, [["protect", "{t}/a.png", "-o", "{t}/prot.jpg",
        *FAST]], lambda t, r: r.returncode == 2 and not (t / "prot.jpg").exists()),
    "18 disk full at the first sidecar (simulated; batch of 2)": (
        {"in/a.png": "image", "in/b.png": "image"},
        [["-c", FULL_DISK, "protect", "{t}/in", "-o", "{t}/out", *FAST]],
        lambda t, r: r.returncode == 1 and not list((t / "out").glob("*.png"))),
    "19 `demo --steps 0`": ({}, [["demo", "--steps", "0", "--out", "{t}/out"]], REFUSED),
    "20 the same batch run 3 times: manifest lines": ({"in/a.png": "image"},
        [["protect", "{t}/in", "-o", "{t}/out", *FAST]] * 3,
        lambda t, r: len((t / "out/manifest.jsonl").read_text().splitlines()) == 1),
}  # fmt: skip


def _said(name: str, r: subprocess.CompletedProcess, t: Path) -> str:
    err = [ln for ln in r.stderr.splitlines() if ln.startswith(("error:", "failed", "ignored"))]
    out = [ln for ln in r.stdout.splitlines() if ln.strip()]
    if name.startswith("10 "):
        return "sidecar: " + json.loads((t / "p.json").read_text())["run_config"]["description"]
    if name.startswith("20 "):
        return (
            f"{len((t / 'out/manifest.jsonl').read_text().splitlines())} line; last run: {out[-1]}"
        )
    if name.startswith("6 "):
        err = [ln for ln in r.stderr.splitlines() if ln.startswith("ok")]
    if name.startswith("11 "):
        pkg = next(ln for ln in out if ln.startswith("package_dir")).rsplit("/", 1)[-1]
        return " ".join(ln for ln in out if "toy_model" in ln) + f"; package_dir: .../{pkg}"
    if name.startswith("16 ") and not (t / ".x.png.k1l2m3n4.tmp").exists():
        out[-1:] = [out[-1] + "; the stale TMP/.x.png.k1l2m3n4.tmp is gone"]
    if name.startswith("14 "):
        return "stdout: " + " ".join(ln.strip() for ln in out)
    return " / ".join(err if r.returncode and err else err + out[-1:])


def run_rows(rows: dict = ROWS, title: str = "issue 12 row", said=_said) -> int:  # noqa: B008
    """Print a table of ``rows`` (files: a kind of :data:`MAKE` or a maker); return the failures."""
    print(f"\n| {title} | exit | what `stillguard` printed |\n|---|---|---|")
    bad = 0
    for name, (files, commands, check) in rows.items():
        with tempfile.TemporaryDirectory() as d:
            t = Path(d)
            env = _env(t)
            for rel, kind in files.items():
                (t / rel).parent.mkdir(parents=True, exist_ok=True)
                (MAKE[kind] if isinstance(kind, str) else kind)(t / rel)
            for args in commands:
                args = [a.replace("{t}", str(t)) for a in args]
                cli = [] if args[0] == "-c" else ["-m", "stillguard.cli"]
                res = subprocess.run([sys.executable, *cli, *args], capture_output=True, text=True,
                                     env=env, timeout=600)  # fmt: skip
            try:
                ok = check(t, res) and "Traceback" not in res.stderr
            except (OSError, ValueError, StopIteration):
                ok = False
            bad += not ok
            msg = said(name, res, t).replace(str(t), "TMP").replace("|", "\\|")
            print(f"| {name} | {res.returncode}{'' if ok else ' (CHECK FAILED)'} | {_code(msg)} |")
    return bad


def _code(msg: str) -> str:
    """Markdown inline code that may itself hold backticks."""
    return f"`` {msg} ``" if "`" in msg else f"`{msg}`"


def _env(t: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("HF_HUB_OFFLINE", "HF_HOME")}
    (t / "hub-cache").mkdir(exist_ok=True)
    return {**env, "HF_HUB_CACHE": str(t / "hub-cache")}


def run_round12() -> int:
    """Print the tables of the first rounds (the CLI cases, then issue 12's rows); return how many
    rows failed their check."""
    print("| input | exit | what `stillguard protect` printed |\n|---|---|---|")
    bad = 0
    for name, make in CASES.items():
        with tempfile.TemporaryDirectory() as d:
            t = Path(d)
            env = _env(t)
            inputs, extra = make(t)
            args = ["-o", str(t / "out")] if "-o" not in extra else []
            if "--model" not in extra:
                args += ["--model", "tiny"]
            cmd = [sys.executable, "-m", "stillguard.cli", "protect", *map(str, inputs), *args, *extra,
                   "--steps", "1"]  # fmt: skip
            res = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
            lines = [ln for ln in res.stderr.splitlines() if ln.startswith("error:")]
            ok = (
                res.returncode != 0
                and len(lines) == 1
                and "Traceback" not in res.stderr
                and not (t / "out").exists()
            )
            bad += not ok
            msg = (lines[0] if lines else res.stderr.strip()[-200:]).replace(str(t), "TMP")
            print(f"| {name} | {res.returncode}{'' if ok else ' (CHECK FAILED)'} | {_code(msg)} |")
    bad += run_rows()
    return bad
