"""The command line: hostile inputs give one line and a non-zero exit; odd inputs work; resume."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import HOSTILE, rand_image
from PIL import Image
from typer.testing import CliRunner

from stillguard import cli
from stillguard.registry import METHODS

runner = CliRunner()
FAST = ["--model", "tiny", "--steps", "2"]


def run(*args: str):
    return runner.invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


def _one_error_line(res) -> str:
    lines = [ln for ln in res.stderr.splitlines() if ln.strip()]
    assert "Traceback" not in res.output, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def _good(path: Path, size: tuple[int, int] = (40, 32), seed: int = 0) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rand_image(size[1], size[0], seed=seed)).save(path)
    return path


# ----------------------------------------------------------------------------- hostile inputs
@pytest.mark.parametrize("case", sorted(set(HOSTILE) - {"directory"}))
def test_hostile_input_one_line_exit_2_nothing_written(tmp_path, case):
    bad = HOSTILE[case][0](tmp_path)
    res = run("protect", bad, "-o", tmp_path / "out", *FAST)
    assert res.exit_code == 2
    assert str(bad) in _one_error_line(res)
    assert not (tmp_path / "out").exists()


def test_symlink_loop_and_unreadable(tmp_path, monkeypatch):
    loop = tmp_path / "loop.png"
    loop.symlink_to(loop)
    res = run("protect", loop, "-o", tmp_path / "out", *FAST)
    assert res.exit_code == 2 and "loop" in _one_error_line(res)
    src = _good(tmp_path / "a.png")

    def denied(*a, **k):
        raise PermissionError(13, "Permission denied")

    monkeypatch.setattr("stillguard.images.open", denied, raising=False)
    res = run("protect", src, "-o", tmp_path / "out", *FAST)
    assert res.exit_code == 2 and "permission denied" in _one_error_line(res)
    assert not (tmp_path / "out").exists()


def test_unwritable_output_and_output_equals_input(tmp_path, monkeypatch):
    src = _good(tmp_path / "a.png")
    before = src.read_bytes()
    res = run("protect", src, "-o", src, *FAST)
    assert res.exit_code == 2 and "overwrite the input" in _one_error_line(res)
    res = run("protect", src, "-o", src / "sub", *FAST)
    assert res.exit_code == 2 and "is a file" in _one_error_line(res)
    monkeypatch.setattr("stillguard.app.outputs.os.access", lambda p, mode: Path(p) != tmp_path)
    res = run("protect", src, "-o", tmp_path / "out", *FAST)
    assert res.exit_code == 2 and "not writable" in _one_error_line(res)
    assert src.read_bytes() == before and sorted(os.listdir(tmp_path)) == ["a.png"]


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--method", "vid-freze"], "did you mean 'vid-freeze'"),
        (["--target", "cogvideo"], "cogvideox-i2v"),
        (["--set", "protect.stepz=3"], "protect.stepz"),
        (["--set", "protect"], "section.key=value"),
        (["--preset", "defualt"], "did you mean 'default'"),
        (["--eps", "64/255"], "32/255"),
        (["--eps", "eight"], "not a number"),
    ],
)
def test_bad_options_one_line_exit_2(tmp_path, args, pattern):
    src = _good(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", *FAST, *args)
    assert res.exit_code == 2 and pattern in _one_error_line(res)
    assert not (tmp_path / "out").exists()


def test_model_folders_without_usable_weights(tmp_path):
    src = _good(tmp_path / "a.png")
    empty = tmp_path / "empty_model"
    empty.mkdir()
    res = run("protect", src, "-o", tmp_path / "out", "--model", empty, "--steps", "2")
    assert res.exit_code == 2 and "model_index.json" in _one_error_line(res)
    pickled = tmp_path / "pickled"
    (pickled / "transformer").mkdir(parents=True)
    (pickled / "model_index.json").write_text("{}")
    (pickled / "transformer" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04")
    res = run("protect", src, "-o", tmp_path / "out", "--model", pickled, "--steps", "2")
    assert res.exit_code == 2 and "pickle" in _one_error_line(res)
    assert not (tmp_path / "out").exists()


def test_default_targets_the_real_model_and_says_how_to_fix(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    src = _good(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out")
    line = _one_error_line(res)
    assert res.exit_code == 2 and "THUDM/CogVideoX-5b-I2V" in line
    assert "--model" in line and "toy" in line and not (tmp_path / "out").exists()


def test_dynamicrafter_default_says_to_convert_the_official_checkpoint(tmp_path, monkeypatch):
    import huggingface_hub

    monkeypatch.setattr(huggingface_hub, "try_to_load_from_cache", lambda *a, **k: None)
    src = _good(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", "--target", "dynamicrafter")
    line = _one_error_line(res)
    assert res.exit_code == 2 and "Doubiiu/DynamiCrafter_1024" in line
    assert "stillguard convert" in line and "huggingface-cli" not in line
    assert not (tmp_path / "out").exists()


def test_debug_shows_the_traceback(tmp_path):
    src = _good(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", "--method", "nope", "--debug")
    assert (
        res.exit_code == 2 and "Traceback" in res.stderr and "error: unknown method" in res.stderr
    )


# ----------------------------------------------------------------------------- odd valid inputs
def _odd_inputs(folder: Path) -> dict[str, tuple[int, int]]:
    """Write the odd-but-valid inputs; return name -> displayed (width, height)."""
    folder.mkdir()
    Image.fromarray((np.arange(32 * 40).reshape(32, 40) * 50 % 65536).astype(np.uint16)).save(
        folder / "g16.png"
    )
    Image.fromarray(rand_image(32, 40)).convert("CMYK").save(folder / "cmyk.jpg")
    Image.fromarray(rand_image(32, 40)).convert("P", palette=Image.Palette.ADAPTIVE).save(
        folder / "pal.png"
    )
    Image.fromarray(rand_image(32, 40, 4)).save(folder / "rgba.png")
    Image.fromarray(rand_image(32, 40, 1)[..., 0]).save(folder / "gray.png")
    exif = Image.Exif()
    exif[0x0112] = 8
    Image.fromarray(rand_image(32, 40)).save(folder / "rot.jpg", exif=exif.tobytes())
    Image.fromarray(rand_image(16, 16)).save(folder / "tiny.png")
    Image.fromarray(rand_image(16, 600)).save(folder / "thin.png")
    frames = [Image.fromarray(rand_image(32, 40, seed=i)).convert("P") for i in range(2)]
    frames[0].save(folder / "anim.gif", save_all=True, append_images=frames[1:])
    sizes = {n: (40, 32) for n in ("g16", "cmyk", "pal", "rgba", "gray")}
    return sizes | {"rot": (32, 40), "tiny": (16, 16), "thin": (600, 16)}


def test_odd_valid_inputs_keep_their_size_json_parses(tmp_path):
    sizes = _odd_inputs(tmp_path / "in")
    res = run("protect", tmp_path / "in", "-o", tmp_path / "out", *FAST, "--json")
    assert res.exit_code == 1  # the animated GIF is refused, as documented
    data = json.loads(res.stdout)
    status = {Path(r["input"]).stem: r for r in data["items"]}
    assert status["anim"]["status"] == "failed" and "animated" in status["anim"]["error"]
    assert data["ok"] == len(sizes) and data["failed"] == 1 and data["real_model"] is False
    for name, size in sizes.items():
        out = Image.open(tmp_path / "out" / f"{name}.protected.png")
        assert status[name]["status"] == "ok" and out.size == size, name
        assert out.mode == ("RGBA" if name == "rgba" else "RGB")
    assert "does NOT protect" in res.stderr  # the demo-model warning goes to stderr


# ----------------------------------------------------------------------------- other commands
def test_list_and_env(tmp_path):
    res = run("list", "methods", "--json")
    assert res.exit_code == 0
    vf = {e["name"]: e for e in json.loads(res.stdout)["methods"]}["vid-freeze"]
    assert [(o["name"], o["default"]) for o in vf["options"]] == [
        (n, d) for n, _, d in METHODS.options("vid-freeze")
    ]
    human = run("list")
    assert human.exit_code == 0 and "presets:" in human.stdout and "max_queries" in human.stdout
    assert "attacks:" in human.stdout and "gaussian-noise" in human.stdout  # transforms too
    attacks = {
        e["name"]: e["doc"] for e in json.loads(run("list", "attacks", "--json").stdout)["attacks"]
    }
    assert attacks["jpeg75"] == "= jpeg:75" and "diffpure" in attacks
    assert run("list", "nope").exit_code == 2
    env = json.loads(run("env", "--json").stdout)
    assert (
        env["versions"]["torch"]
        and isinstance(env["cuda_available"], bool)
        and env["torch_threads"] >= 1
    )


def test_demo_calls_run_demo(tmp_path, monkeypatch):
    import stillguard.app.demo

    seen = {}

    def fake(out_dir, **kw):
        seen.update(kw, out_dir=out_dir)
        return SimpleNamespace(out_dir=out_dir, protected_path=Path(out_dir) / "p.png",
                               report_path=Path(out_dir) / "r.html", table="TABLE",
                               report=SimpleNamespace(verdicts={"identity": "frozen"}))  # fmt: skip

    monkeypatch.setattr(stillguard.app.demo, "run_demo", fake)
    res = run("demo", "--out", tmp_path / "d", "--steps", "3", "--seed", "5", "--model", "tiny")
    assert res.exit_code == 0 and "TABLE" in res.stdout
    assert seen["steps"] == 3 and seen["seed"] == 5 and seen["model"] == "tiny"
    assert Path(seen["out_dir"]) == tmp_path / "d"


def test_verify_on_tiny(tmp_path):
    src = _good(tmp_path / "a.png", size=(48, 32))
    res = run("protect", src, "-o", tmp_path / "a.protected.png", *FAST)
    assert res.exit_code == 0 and (tmp_path / "a.protected.json").is_file()
    res = run("verify", src, tmp_path / "a.protected.png", "--model", "tiny", "--seeds", "0",
              "--transforms", "identity", "--json")  # fmt: skip
    assert res.exit_code == 0
    data = json.loads(res.stdout)
    assert set(data["verdicts"]) == {"identity"} and data["config"]["real_model"] is False
    assert abs(data["config"]["eps"] - 8 / 255) < 1e-9  # taken from the sidecar
    other = _good(tmp_path / "b.png", size=(40, 40))
    res = run("verify", src, other, "--model", "tiny")
    assert (
        res.exit_code == 2
        and "differ" not in res.stdout
        and "pass the original" in _one_error_line(res)
    )


# ----------------------------------------------------------------------------- kill and resume
@pytest.mark.slow
def test_sigkill_mid_batch_then_resume_does_each_input_once(tmp_path):
    src, out = tmp_path / "in", tmp_path / "out"
    names = [f"p{i}" for i in range(8)]
    for i, n in enumerate(names):
        _good(src / f"{n}.png", size=(96, 64), seed=i)
    cmd = [sys.executable, "-m", "stillguard.cli", "protect", str(src), "-o", str(out), "--model", "tiny",
           "--steps", "6"]  # fmt: skip
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 90
        while not list(out.glob("*.protected.png")) and time.monotonic() < deadline:
            assert proc.poll() is None, "the batch ended before writing an output"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
    finally:
        proc.wait(30)
    killed_at = len(list(out.glob("*.protected.png")))
    assert 1 <= killed_at < len(names), "the kill did not land mid-batch"
    res = run("protect", src, "-o", out, "--model", "tiny", "--steps", "6", "--json")
    assert res.exit_code == 0
    lines = [json.loads(x) for x in (out / "manifest.jsonl").read_text().splitlines()]
    ok = [r for r in lines if r["status"] == "ok"]
    assert sorted(Path(r["input"]).stem for r in ok) == names  # each input protected exactly once
    assert all(r["status"] in ("ok", "skipped") for r in lines)
    for r in ok:
        from stillguard.files import sha256_file

        assert (
            sha256_file(out / r["output"]) == r["output_sha256"] and (out / r["sidecar"]).is_file()
        )
    assert not list(out.rglob("*.tmp"))
    again = json.loads(
        run("protect", src, "-o", out, "--model", "tiny", "--steps", "6", "--json").stdout
    )
    assert again["skipped"] == len(names) and again["ok"] == 0


@pytest.mark.gpu
@pytest.mark.skipif(not __import__("torch").cuda.is_available(), reason="needs CUDA")
def test_protect_on_cuda_matches_budget(tmp_path):
    src = _good(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", *FAST, "--device", "cuda", "--json")
    assert res.exit_code == 0 and json.loads(res.stdout)["ok"] == 1
    side = json.loads((tmp_path / "out" / "a.protected.json").read_text())
    assert side["run_config"]["target"]["device"] == "cuda" and side["linf_255"] <= 8
