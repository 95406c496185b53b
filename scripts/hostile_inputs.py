"""Feed the real `stillguard protect` CLI every hostile input we guard against and print what it says.

    .venv/bin/python scripts/hostile_inputs.py            # prints a Markdown table

Each case is built in a temporary folder; the script checks that the exit code is non-zero, that
stderr is one line with no traceback, and that nothing was written to the output folder.
"""

from __future__ import annotations

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


def main() -> int:
    env = {**os.environ, "HF_HUB_OFFLINE": "1"}
    print("| input | exit | what `stillguard protect` printed |\n|---|---|---|")
    bad = 0
    for name, make in CASES.items():
        with tempfile.TemporaryDirectory() as d:
            t = Path(d)
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
            print(f"| {name} | {res.returncode}{'' if ok else ' (CHECK FAILED)'} | `{msg}` |")
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
