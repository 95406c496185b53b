"""What a hostile but realistic new user broke (issue 12): one test per row, by the real CLI or app.

Rows: 1 sub-folders, 2 FIFOs and devices, 3 the hub (no network at run time), 4 verify's default
model, 5 new output folder, 6 two cards into one folder, 7 AVIF in folders, 8 bf16 on CPU, 9 tiny
budget, 10 sidecar description, 11 env facts, 12 odd EXIF/ICC, 13 bad numbers and model settings,
14 --json errors, 15 unwritable report/demo folders, 16 stale temporaries, 17 -o prot.jpg,
18 disk full, 19 demo --steps 0, 20 resume leaves the manifest as it was.
"""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
import threading
from pathlib import Path

import numpy as np
import pytest
from helpers import fake_model_folder, hub_snapshot, rand_image
from PIL import Image, ImageCms
from typer.testing import CliRunner

from stillguard import cli
from stillguard.app import run as B
from stillguard.app.config import build_config
from stillguard.app.run import MANIFEST
from stillguard.errors import InputError, StillguardError

runner = CliRunner()
FAST = ["--model", "tiny", "--steps", "1"]
REAL = "THUDM/CogVideoX-5b-I2V"


def run(*args):
    return runner.invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


def one_error(res) -> str:
    """The one ``error:`` line (the demo-model warning, printed when a model loads, aside)."""
    lines = [
        ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("warning: model")
    ]
    assert "Traceback" not in res.output, res.output
    assert len(lines) == 1 and lines[0].startswith("error: "), res.stderr
    return lines[0]


def img(path: Path, seed: int = 0, fmt: str | None = None, size=(40, 32)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rand_image(size[1], size[0], seed=seed)).save(path, format=fmt)
    return path


@pytest.fixture()
def tiny(tiny_adapter):
    return tiny_adapter("cogvideox-i2v")


@pytest.fixture()
def cfg():
    return build_config("debug", steps=1)


@pytest.fixture()
def no_network(monkeypatch, tmp_path):
    """An empty hub cache, and every socket connect / DNS lookup recorded and refused."""
    import huggingface_hub.constants as hc

    cache = tmp_path / "hub-cache"
    cache.mkdir()
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    tried: list[object] = []

    def refuse(*args, **kwargs):
        tried.append(args[1:] if args else kwargs)
        raise OSError(errno.ENETUNREACH, "network is off in this test")

    monkeypatch.setattr(socket.socket, "connect", refuse)
    monkeypatch.setattr(socket.socket, "connect_ex", refuse)
    monkeypatch.setattr(socket, "getaddrinfo", refuse)
    return cache, tried


# ----------------------------------------------------------------------------- 1, 5, 20
def test_row1_subfolders_mirrored_under_out(tmp_path):
    img(tmp_path / "in" / "a.png")
    img(tmp_path / "in" / "sub" / "deeper" / "b.png", seed=1)
    res = run("protect", tmp_path / "in", "-o", tmp_path / "out", *FAST)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "out" / "sub" / "deeper" / "b.protected.png").is_file()
    assert (tmp_path / "out" / "sub" / "deeper" / "b.protected.json").is_file()


def test_row5_output_file_in_a_new_folder(tmp_path):
    src = img(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "new" / "deeper" / "x.png", *FAST)
    assert res.exit_code == 0, res.output
    assert (tmp_path / "new" / "deeper" / "x.png").is_file()
    assert (tmp_path / "new" / "deeper" / "x.json").is_file()


def test_row20_resume_leaves_the_manifest_as_it_was(tmp_path, tiny, cfg):
    img(tmp_path / "in" / "a.png")
    img(tmp_path / "in" / "b.png", seed=1)
    B.run_batch([tmp_path / "in"], tmp_path / "out", cfg, tiny)
    before = (tmp_path / "out" / MANIFEST).read_bytes()
    for _ in range(2):
        again = B.run_batch([tmp_path / "in"], tmp_path / "out", cfg, tiny)
        assert [r.status for r in again.items] == ["skipped", "skipped"]
    assert (tmp_path / "out" / MANIFEST).read_bytes() == before


# ----------------------------------------------------------------------------- 2: special files
def test_row2_fifo_and_dev_zero_refused_without_blocking(tmp_path):
    folder = tmp_path / "in"
    img(folder / "a.png")
    os.mkfifo(folder / "b.png")
    box: dict = {}
    t = threading.Thread(
        target=lambda: box.update(
            res=run("protect", folder, "/dev/zero", "-o", tmp_path / "out", *FAST, "--json")
        ),
        daemon=True,
    )
    t.start()
    t.join(120)
    if t.is_alive():  # unblock the reader so the test process can end, then fail
        fd = os.open(folder / "b.png", os.O_WRONLY | os.O_NONBLOCK)
        os.close(fd)
        pytest.fail("protect blocked on a FIFO")
    res = box["res"]
    data = json.loads(res.stdout)
    status = {Path(r["input"]).name: r for r in data["items"]}
    assert res.exit_code == 1 and status["a.png"]["status"] == "ok"
    assert "not a regular file" in status["b.png"]["error"]
    assert "not a regular file" in status["zero"]["error"]


def test_row2_one_check_before_any_open(tmp_path, monkeypatch):
    from stillguard import images

    fifo = tmp_path / "f.png"
    os.mkfifo(fifo)
    opened = []
    real_open = os.open
    monkeypatch.setattr(
        images.os, "open", lambda p, *a, **k: opened.append(p) or real_open(p, *a, **k)
    )
    with pytest.raises(InputError, match="not a regular file"):
        images.load_image(fifo)
    with pytest.raises(InputError, match="not a regular file"):
        images.check_input("/dev/zero")
    assert opened == []


def test_row2_file_swapped_for_a_fifo_after_the_check_is_refused_unblocked(tmp_path, monkeypatch):
    from stillguard import images

    good = img(tmp_path / "good.png")
    fifo = tmp_path / "swapped.png"
    os.mkfifo(fifo)
    checked = os.stat(good)  # what the check saw before the file was replaced by a FIFO
    monkeypatch.setattr(images, "check_input", lambda p: checked)
    box: dict = {}

    def load():
        try:
            images.load_image(fifo)
        except InputError as e:
            box["error"] = str(e)

    t = threading.Thread(target=load, daemon=True)
    t.start()
    t.join(60)
    if t.is_alive():
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
        pytest.fail("load_image blocked on a FIFO")
    assert "replaced" in box["error"]


# ----------------------------------------------------------------------------- 3, 4: the hub
def test_row3_demo_and_protect_never_reach_the_network(tmp_path, no_network):
    cache, tried = no_network
    res = run("demo", "--model", REAL, "--out", tmp_path / "d")
    assert res.exit_code == 2 and "not on this machine" in one_error(res)
    hub_snapshot(cache, REAL, {"model_index.json": b'{"transformer": ["diffusers", "X"]}'})
    src = img(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", "--model", REAL)
    line = one_error(res)
    assert res.exit_code == 2 and "not on this machine" in line and "transformer" in line
    assert tried == [] and not (tmp_path / "out").exists() and not (tmp_path / "d").exists()


def test_row3_cached_hub_id_loads_offline(tmp_path, no_network, tiny_adapter, monkeypatch):
    from stillguard.app.models import load_target

    cache, tried = no_network
    folder = tmp_path / "svd"
    tiny_adapter("svd").save_pretrained(str(folder))
    hub_snapshot(cache, "someone/tiny-svd", folder)
    seen = {}
    import huggingface_hub.constants as hc

    def spy(*a, **k):
        seen.update(env=os.environ.get("HF_HUB_OFFLINE"), const=hc.HF_HUB_OFFLINE)
        return real(*a, **k)

    from stillguard.registry import ADAPTERS

    cls = ADAPTERS.get("svd")
    real = cls.from_pretrained
    monkeypatch.setattr(cls, "from_pretrained", spy)
    before = (os.environ.get("HF_HUB_OFFLINE"), hc.HF_HUB_OFFLINE)
    adapter = load_target("svd", "someone/tiny-svd", "cpu", "float32", {})
    assert adapter.model_id == "someone/tiny-svd" and tried == []
    assert seen == {"env": "1", "const": True}  # offline while loading
    assert (os.environ.get("HF_HUB_OFFLINE"), hc.HF_HUB_OFFLINE) == before  # restored after


def test_row3_partial_snapshot_missing_shard_is_refused(tmp_path, no_network):
    from stillguard.app.models import check_model_available

    cache, tried = no_network
    index = {"weight_map": {"a": "diffusion_pytorch_model-00001-of-00002.safetensors",
                            "b": "diffusion_pytorch_model-00002-of-00002.safetensors"}}  # fmt: skip
    hub_snapshot(cache, "o/partial", {
        "model_index.json": b'{"transformer": ["diffusers", "X"], "scheduler": ["diffusers", "S"]}',
        "scheduler/scheduler_config.json": b"{}",
        "transformer/config.json": b"{}",
        "transformer/diffusion_pytorch_model.safetensors.index.json": json.dumps(index).encode(),
        "transformer/diffusion_pytorch_model-00001-of-00002.safetensors": b"\x00",
    })  # fmt: skip
    with pytest.raises(StillguardError, match="not on this machine.*00002-of-00002"):
        check_model_available("o/partial")
    assert tried == []


def test_row4_verify_without_model_says_the_weights_are_missing(tmp_path, no_network):
    a = img(tmp_path / "a.png")
    b = img(tmp_path / "b.png", seed=1)
    res = run("verify", a, b)
    line = one_error(res)
    assert res.exit_code == 2 and "not on this machine" in line and REAL in line


# ----------------------------------------------------------------------------- 6, 7: folders
def test_row6_two_cards_into_one_folder_never_overwrite(tmp_path, tiny, cfg):
    a = img(tmp_path / "cardA" / "IMG_0001.jpg", seed=1, fmt="JPEG")
    b = img(tmp_path / "cardB" / "IMG_0001.jpg", seed=2, fmt="JPEG")
    out = tmp_path / "out"
    first = B.run_batch([a.parent], out, cfg, tiny)
    png_a = Path(first.items[0].output)
    bytes_a = png_a.read_bytes()
    second = B.run_batch([b.parent], out, cfg, tiny)
    png_b = Path(second.items[0].output)
    assert second.items[0].status == "ok" and png_b != png_a and png_b.is_file()
    assert png_a.read_bytes() == bytes_a
    assert json.loads(png_b.with_suffix(".json").read_text())["input"]["path"] == str(b)
    again_a = B.run_batch([a.parent], out, cfg, tiny)
    again_b = B.run_batch([b.parent], out, cfg, tiny)
    assert [again_a.items[0].status, again_b.items[0].status] == ["skipped", "skipped"]
    assert [again_a.items[0].output, again_b.items[0].output] == [str(png_a), str(png_b)]


def test_row7_folder_mode_accepts_avif_and_lists_skipped_files(tmp_path):
    only = tmp_path / "only"
    img(only / "a.avif", fmt="AVIF")
    res = run("protect", only, "-o", tmp_path / "o1", *FAST)
    assert res.exit_code == 0 and (tmp_path / "o1" / "a.protected.png").is_file(), res.output
    mixed = tmp_path / "mixed"
    img(mixed / "b.avif", fmt="AVIF")
    (mixed / "notes.txt").write_text("not a photo")
    res = run("protect", mixed, "-o", tmp_path / "o2", *FAST, "--json")
    data = json.loads(res.stdout)
    assert data["ok"] == 1 and data["ignored"] == [str(mixed / "notes.txt")]
    res = run("protect", mixed, "-o", tmp_path / "o3", *FAST)
    assert f"ignored {mixed / 'notes.txt'}" in res.stderr


# ----------------------------------------------------------------------------- 8, 9, 13, 19
def test_row8_half_precision_on_cpu_is_a_clear_error(tmp_path, monkeypatch):
    import stillguard.adapters

    monkeypatch.setattr(stillguard.adapters, "load_adapter", lambda *a, **k: pytest.fail("loaded"))
    src = img(tmp_path / "a.png")
    for dt in ("bf16", "fp16"):
        res = run("protect", src, "-o", tmp_path / "out", "--model", "toy", "--dtype", dt)
        line = one_error(res)
        assert res.exit_code == 2 and "CPU" in line and "float32" in line
    res = run("verify", src, src, "--model", "toy", "--dtype", "bf16")
    assert res.exit_code == 2 and "CPU" in one_error(res)
    with pytest.raises(InputError, match="CPU"):
        build_config("demo", dtype="bf16")


@pytest.mark.parametrize(
    "args,pattern",
    [
        (["--eps", "0.001"], "1/255"),
        (["--seed", "99999999999999999999"], "seed"),
        (["--seed", "-1"], "seed"),
    ],
)
def test_row9_row13_numbers_refused_in_one_line(tmp_path, args, pattern):
    src = img(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", *FAST, *args)
    assert res.exit_code == 2 and pattern in one_error(res)
    assert not (tmp_path / "out").exists()


@pytest.mark.parametrize(
    "sets,settings,pattern",
    [
        (["target.options.bogus=1"], None, "bogus"),
        (["target.options.num_frames=-1"], None, "num_frames"),
        (["target.options.height=100.5"], None, "height"),
        ([], {"height": 100000}, "height"),
        ([], {"num_frames": 0}, "num_frames"),
        ([], {"height": "tall"}, "height"),
    ],
)
def test_row13_target_options_and_model_settings_checked_before_loading(
    tmp_path, monkeypatch, sets, settings, pattern
):
    import stillguard.adapters

    monkeypatch.setattr(stillguard.adapters, "load_adapter", lambda *a, **k: pytest.fail("loaded"))
    model = fake_model_folder(tmp_path / "model", settings)
    src = img(tmp_path / "a.png")
    sets_args = [x for s in sets for x in ("--set", s)]
    res = run("protect", src, "-o", tmp_path / "out", "--model", model, "--steps", "1", *sets_args)
    line = one_error(res)
    assert res.exit_code == 2 and pattern in line
    if settings:
        assert "stillguard.json" in line


def test_row19_demo_steps_zero_refused_as_protect_does(tmp_path, monkeypatch):
    import stillguard.adapters

    monkeypatch.setattr(stillguard.adapters, "load_adapter", lambda *a, **k: pytest.fail("loaded"))
    res = run("demo", "--steps", "0", "--out", tmp_path / "d")
    assert res.exit_code == 2 and "steps >= 1" in one_error(res)
    assert not (tmp_path / "d").exists()
    src = img(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", *FAST[:2], "--steps", "0")
    assert res.exit_code == 2 and "steps >= 1" in one_error(res)


# ----------------------------------------------------------------------------- 10, 11, 12
def test_row10_sidecar_describes_the_run_that_happened(tmp_path):
    src = img(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "a.protected.png", "--model", "tiny",
              "--method", "noise", "--eps", "4/255")  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "a.protected.json").read_text())
    desc = side["run_config"]["description"]
    assert "noise" in desc and "4/255" in desc and "0 PGD steps" in desc, desc
    assert "Vid-Freeze" not in desc and "tiny" in desc and "NOT" in desc, desc


def test_row11_env_tells_true_facts():
    from stillguard.adapters import toy_folder

    env = json.loads(run("env", "--json").stdout)
    assert env["toy_model_installed"] is (toy_folder() / "model_index.json").is_file() is True
    assert Path(env["package_dir"]).name == "stillguard"


def test_row12_ascii_orientation_and_big_icc_profile_load(tmp_path):
    from stillguard.images import load_image

    arr = rand_image(32, 40)
    entry = struct.pack("<HHI4s", 0x0112, 2, 4, b"top\x00")  # Orientation typed ASCII: "top"
    tiff = b"II*\x00" + struct.pack("<I", 8) + struct.pack("<H", 1) + entry + struct.pack("<I", 0)
    Image.fromarray(arr).save(tmp_path / "asc.jpg", exif=b"Exif\x00\x00" + tiff)
    loaded = load_image(tmp_path / "asc.jpg")
    assert loaded.info["exif_orientation"] == 1 and loaded.info["size"] == [40, 32]
    srgb = ImageCms.ImageCmsProfile(ImageCms.createProfile("sRGB")).tobytes()
    pad = np.random.default_rng(1).integers(0, 256, 8 << 20, dtype=np.uint8).tobytes()
    Image.fromarray(arr).save(tmp_path / "icc.png", icc_profile=srgb + pad)
    loaded = load_image(tmp_path / "icc.png")
    assert np.array_equal((loaded.tensor[0].permute(1, 2, 0).numpy() * 255).round(), arr)


# ----------------------------------------------------------------------------- 14: --json errors
@pytest.mark.parametrize(
    "args",
    [
        ["protect", "IMG", "-o", "OUT", "--model", "tiny", "--method", "nope"],
        ["protect", "IMG", "-o", "OUT", "--model", REAL],
        ["protect", "MISSING", "-o", "OUT", "--model", "tiny"],
        ["protect", "IMG", "-o", "OUT", "--model", "tiny", "--steps", "abc"],
        ["protect", "IMG", "-o", "OUT", "--model", "tiny", "--no-such-option"],
        ["verify", "IMG", "MISSING", "--model", "tiny"],
        ["demo", "--model", REAL, "--out", "OUT"],
        ["list", "nope"],
    ],
)
def test_row14_json_errors_are_one_json_object_on_stdout(tmp_path, no_network, args):
    src = img(tmp_path / "a.png")
    sub = {"IMG": src, "OUT": tmp_path / "out", "MISSING": tmp_path / "nope.png"}
    res = run(*[sub.get(a, a) for a in args], "--json")
    assert res.exit_code == 2
    data = json.loads(res.stdout)
    assert set(data) == {"error", "exit_code"} and data["exit_code"] == 2 and data["error"]


# ----------------------------------------------------------------------------- 15: writability
def test_row15_verify_report_and_demo_folders_checked_first(tmp_path, monkeypatch):
    import stillguard.measure.evaluate

    monkeypatch.setattr(stillguard.measure.evaluate, "evaluate", lambda *a, **k: pytest.fail("ran"))
    locked = tmp_path / "locked"
    locked.mkdir()
    monkeypatch.setattr("stillguard.app.outputs.os.access", lambda p, mode: Path(p) != locked)
    a = img(tmp_path / "a.png")
    res = run("verify", a, a, "--model", "tiny", "--report", locked / "rep")
    assert res.exit_code == 2 and "not writable" in one_error(res)
    import stillguard.adapters

    monkeypatch.setattr(stillguard.adapters, "load_adapter", lambda *a, **k: pytest.fail("loaded"))
    res = run("demo", "--model", "tiny", "--out", locked / "demo")
    assert res.exit_code == 2 and "not writable" in one_error(res)


# ----------------------------------------------------------------------------- 16, 17, 18: files
def test_row16_stale_temporaries_of_a_single_file_run_are_cleaned(tmp_path):
    import fcntl

    src = img(tmp_path / "a.png")
    out = tmp_path / "out"
    out.mkdir()
    stale = [out / ".x.png.k1l2m3n4.tmp", out / ".x.json.z9y8x7w6.tmp"]
    for p in stale:
        p.write_bytes(b"left by a SIGKILL")
    live = out / ".x.png.live0000.tmp"  # a run writing it right now holds its lock
    live.write_bytes(b"being written")
    other = out / ".y.png.abcd1234.tmp"  # another output's temporary: not ours to judge
    other.write_bytes(b"x")
    with open(live, "rb") as holder:
        fcntl.flock(holder.fileno(), fcntl.LOCK_EX)
        res = run("protect", src, "-o", out / "x.png", *FAST)
    assert res.exit_code == 0, res.output
    assert not any(p.exists() for p in stale) and live.exists() and other.exists()


def test_row17_non_png_output_name_refused(tmp_path):
    src = img(tmp_path / "a.png")
    for name in ("prot.jpg", "prot.webp", "prot.JPEG"):
        res = run("protect", src, "-o", tmp_path / name, *FAST)
        assert res.exit_code == 2 and ".png" in one_error(res)
        assert not (tmp_path / name).exists()


def _enospc_on(monkeypatch, suffix: str):
    import stillguard.files

    real = os.replace

    def replace(src, dst):
        if str(dst).endswith(suffix):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(src, dst)

    monkeypatch.setattr(stillguard.files.os, "replace", replace)


def test_row18_disk_full_on_the_sidecar_leaves_no_orphan_png(tmp_path, monkeypatch):
    src = img(tmp_path / "a.png")
    _enospc_on(monkeypatch, ".json")
    res = run("protect", src, "-o", tmp_path / "out" / "a.png", *FAST)
    line = one_error(res)
    assert res.exit_code == 1 and str(tmp_path / "out" / "a.json") in line and "space" in line
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == []


def test_row18_batch_stops_at_the_first_disk_full(tmp_path, tiny, cfg, monkeypatch):
    for i in range(3):
        img(tmp_path / "in" / f"p{i}.png", seed=i)
    _enospc_on(monkeypatch, ".png")
    events = []
    with pytest.raises(StillguardError, match=r"p0\.protected\.png.*space") as e:
        B.run_batch([tmp_path / "in"], tmp_path / "out", cfg, tiny, callback=events.append)
    assert getattr(e.value, "errno", None) == errno.ENOSPC
    assert [ev.kind for ev in events].count("start") == 1
    assert not list((tmp_path / "out").glob("*.png")) and not list(
        (tmp_path / "out").glob("*.json")
    )


def test_row18_manifest_write_failure_names_the_manifest(tmp_path, tiny, cfg, monkeypatch):
    import stillguard.app.run.manifest as M

    img(tmp_path / "in" / "p0.png")

    def full(fd, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(M.os, "write", full)
    with pytest.raises(StillguardError, match="manifest.jsonl.*space"):
        B.run_batch([tmp_path / "in"], tmp_path / "out", cfg, tiny)
