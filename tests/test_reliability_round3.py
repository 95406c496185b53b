"""Reliability round 3 (issue 26), items 3-6 and 10-13, each by the real CLI (or the library):

3 every number bounded before any work, 4 zero/negative limits, 5 one memory unit convention,
6 GPS kept only with --keep-gps, 10 names escaped, 11 web --no-calibrate, 12 lossy re-saving
named with the measured effect, 13 HEIC as a default dependency (rotation and GPS kept right).
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import pytest
from helpers import one_error, rand_image
from PIL import Image
from typer.testing import CliRunner

from stillguard import cli
from stillguard.errors import InputError

ROOT = Path(__file__).resolve().parents[1]
runner = CliRunner()
FAST = ["--model", "tiny", "--steps", "1"]
BIG = "100000000"
GPS = {1: "N", 2: (52.0, 31.0, 12.5), 3: "E", 4: (13.0, 24.0, 0.0)}


def run(*args):
    return runner.invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


def img(path: Path, seed: int = 0, fmt: str | None = None, size=(40, 32), **kw) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(rand_image(size[1], size[0], seed=seed)).save(path, format=fmt, **kw)
    return path


def camera_exif(orientation: int = 1) -> Image.Exif:
    """EXIF as a phone writes it: make, model, date, orientation and a GPS position."""
    exif = Image.Exif()
    exif[0x010F], exif[0x0110] = "Acme", "Phone 1"
    exif[0x0112] = orientation
    exif[0x8825] = dict(GPS)
    exif.get_ifd(0x8769)[0x9003] = "2024:05:01 10:00:00"  # DateTimeOriginal
    return exif


def out_exif(png: Path) -> Image.Exif:
    with Image.open(png) as im:
        return im.getexif()


@pytest.fixture()
def no_work(monkeypatch):
    """Fail the test if anything past the option checks runs: a model, a plan, videos, Ray, a page.

    (Only attributes every caller looks up when it runs are patched: a module that bound one at
    import would keep the failing stand-in after the test.)
    """
    import ray

    import stillguard.adapters
    import stillguard.measure.evaluate
    import stillguard.plan
    import stillguard.web

    def fail(*a, **k):
        pytest.fail("work started before the options were checked")

    for mod, name in [(stillguard.adapters, "load_adapter"), (stillguard.plan, "plan"),
                      (stillguard.plan, "choose_rungs"),
                      (stillguard.measure.evaluate, "evaluate"), (stillguard.web, "serve"),
                      (ray, "init")]:  # fmt: skip
        monkeypatch.setattr(mod, name, fail)


# ----------------------------------------------------------------------------- 3: bounds
PROTECT = ["protect", "IMG", "-o", "OUT"]


@pytest.mark.parametrize(
    "args,label,rng",
    [
        (["plan", "--batch-size", BIG], "--batch-size 100000000", "[1, 64]"),
        (["plan", "--steps", BIG], "--steps 100000000", "[0, 100000]"),
        (["plan", "--rungs", f"frames={BIG}"], "frames", "[1, 1024]"),
        (["plan", "--rungs", "resolution=100000x100000"], "height", "[16, 4096]"),
        ([*PROTECT, *FAST, "--batch-size", BIG], "--batch-size 100000000", "[1, 64]"),
        ([*PROTECT, "--model", "tiny", "--steps", BIG], "--steps 100000000", "[0, 100000]"),
        ([*PROTECT, *FAST, "--set", f"protect.eot_samples={BIG}"], "eot_samples", "[1, 64]"),
        ([*PROTECT, *FAST, "--set", f"method.max_queries={BIG}"], "max_queries", "[1, 65536]"),
        (
            [*PROTECT, *FAST, "--method", "rollout-freeze", "--set", f"method.unroll={BIG}"],
            "unroll",
            "[0, 1000]",
        ),  # fmt: skip
        ([*PROTECT, *FAST, "--set", "method.max_queries=0"], "max_queries", "[1, 65536]"),
        (
            [*PROTECT, *FAST, "--method", "mist", "--set", "method.dm_weight=1e300"],
            "dm_weight",
            "[0, 1000000]",
        ),  # fmt: skip
        (
            [*PROTECT, *FAST, "--set", f"target.options.num_frames={BIG}"],
            "num_frames",
            "[1, 1024]",
        ),  # fmt: skip
        ([*PROTECT, *FAST, "--ray", "local", "--workers", BIG], "--workers", "[1, 1024]"),
        (
            [*PROTECT, *FAST, "--ray", "local", "--cpus-per-worker", "0"],
            "--cpus-per-worker",
            "[1, 1024]",
        ),  # fmt: skip
        ([*PROTECT, *FAST, "--max-pixels", "10" + BIG], "--max-pixels", "[256, 178956970]"),
        (
            ["verify", "IMG", "IMG", "--model", "tiny", "--seeds", ",".join(map(str, range(500)))],
            "--seeds",
            "[1, 32]",
        ),  # fmt: skip
        (
            ["verify", "IMG", "IMG", "--model", "tiny", "--seeds", "0,99999999999999999999"],
            "--seeds",
            "[0, 9223372036854775807]",
        ),  # fmt: skip
        (["demo", "--steps", BIG, "--out", "OUT"], "--steps 100000000", "[0, 100000]"),
        (["demo", "--seed", "-1", "--out", "OUT"], "--seed -1", "[0, 9223372036854775807]"),
        (["web", "--model", "tiny", "--max-photos", BIG], "--max-photos", "[1, 1000]"),
        (["web", "--model", "tiny", "--max-upload-mb", "1e9"], "--max-upload-mb", "[0.01, 1024]"),
        (["web", "--model", "tiny", "--port", "0"], "--port 0", "[1, 65535]"),
    ],
)
def test_item3_every_number_is_bounded_before_any_work(tmp_path, no_work, args, label, rng):
    src = img(tmp_path / "a.png")
    sub = {"IMG": src, "OUT": tmp_path / "out"}
    res = run(*[sub.get(a, a) for a in args])
    line = one_error(res)
    assert res.exit_code == 2 and label in line and rng in line, line
    assert not (tmp_path / "out").exists()


def test_item3_library_checks_the_same_table():
    from stillguard.bounds import BOUNDS, bound_of
    from stillguard.plan import plan
    from stillguard.settings import LoopConfig

    with pytest.raises(InputError, match=r"batch_size=100000000 is outside \[1, 64\]"):
        plan("cogvideox-i2v", model="tiny", batch_size=10**8)
    with pytest.raises(InputError, match=r"eot_samples=1000000 is outside \[1, 64\]"):
        LoopConfig(eot_samples=10**6)
    with pytest.raises(InputError, match=r"steps=1.5 is not a whole number"):
        LoopConfig(steps=1.5)
    for name, b in BOUNDS.items():
        assert b.low <= b.high and b.why, name
    from stillguard import plugins  # noqa: F401
    from stillguard.registry import METHODS, SPACES, TRANSFORMS

    for reg in (METHODS, SPACES, TRANSFORMS):
        for plugin in reg.names():
            for opt, annotation, default in reg.options(plugin):
                if "int" in annotation.split("|")[0]:  # a whole number: an entry of its own
                    assert opt in BOUNDS or reg is TRANSFORMS, (plugin, opt)
                if isinstance(default, (int, float)) and not isinstance(default, bool):
                    b = bound_of(opt)
                    assert b.low <= default <= b.high, (plugin, opt, default)


# ----------------------------------------------------------------------------- 4: limits
@pytest.mark.parametrize("value", ["0", "-5"])
def test_item4_zero_or_negative_pixel_limit_refused_at_the_start(tmp_path, no_work, value):
    src = img(tmp_path / "a.png")
    for args in (["protect", src, "-o", tmp_path / "out", *FAST], ["web", "--model", "tiny"]):
        res = run(*args, "--max-pixels", value)
        line = one_error(res)
        assert res.exit_code == 2 and f"--max-pixels {value} is outside [256, " in line, line
    assert not (tmp_path / "out").exists()


def test_item4_library_limits_refuse_zero():
    from stillguard.images import load_image
    from stillguard.web import Limits

    with pytest.raises(InputError, match=r"max_pixels=0 is outside \[256"):
        load_image("never-read.png", max_pixels=0)
    for bad in ({"max_pixels": 0}, {"max_photos": 0}, {"max_upload_mb": 0.0}):
        with pytest.raises(InputError, match="outside"):
            Limits(**bad)


# ----------------------------------------------------------------------------- 5: memory units
@pytest.mark.parametrize(
    "cmd", [["protect", "IMG", "-o", "OUT", *FAST], ["plan", "--model", "tiny", "--ladder"]]
)
@pytest.mark.parametrize(
    "size,unit,other", [("1KB", " GB", "iB"), ("1GiB", " GiB", " GB"), ("3TB", " TB", "iB")]
)
def test_item5_gpu_memory_range_in_the_users_units(tmp_path, no_work, cmd, size, unit, other):
    src = img(tmp_path / "a.png")
    sub = {"IMG": src, "OUT": tmp_path / "out"}
    res = run(*[sub.get(a, a) for a in cmd], "--gpu-memory", size)
    line = one_error(res)
    assert res.exit_code == 2 and f"--gpu-memory {size} is outside [" in line, line
    assert unit in line and other not in line, line


def test_item5_fit_line_and_plan_table_echo_the_users_units(tmp_path):
    src = img(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "out", *FAST, "--gpu-memory", "80GB")
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.stderr.splitlines() if ln.startswith("planned for"))
    assert line.startswith("planned for 80GB: rungs none (planned need ") and " GB" in line
    assert "iB" not in line, line
    res = run("plan", "--model", "tiny", "--dtype", "float32", "--gpu-memory", "80GB")
    assert res.exit_code == 0, res.output
    sizes = re.findall(r"\d \w?i?B\b", res.stdout)
    assert sizes and all("iB" not in s for s in sizes), sizes
    assert "fits 80.00 GB?" in res.stdout, res.stdout


def _numbers(text: str, unit: str) -> list[float]:
    return [float(x) for x in re.findall(r"([0-9.]+) " + unit, text)]


@pytest.mark.parametrize("size,unit,scale", [("1MB", "GB", 1e9), ("1MiB", "GiB", 2**30)])
def test_item5_ladder_error_numbers_add_up_in_one_unit(monkeypatch, size, unit, scale):
    from stillguard.plan import LadderError, choose_rungs, parse_memory
    from stillguard.plan import ladder as L
    from stillguard.plan.gpus import CONTEXT_BYTES, need_bytes

    peak = 14_570_000  # the "13.89 MiB" peak, whose need read as a contradiction

    def fake_plan(target, **kw):
        return SimpleNamespace(fits=False, need_bytes=need_bytes(peak), peak_bytes=peak,
                               rungs=["bf16"], image_size=(64, 64), facts={}, method="advdm",
                               skipped_rungs={})  # fmt: skip

    monkeypatch.setattr(L, "plan", fake_plan)
    monkeypatch.setattr(L, "_unavailable", lambda *a: "not in this test")
    with pytest.raises(LadderError) as err:
        choose_rungs("cogvideox-i2v", gpu_memory=parse_memory(size))
    msg = str(err.value)
    other = "iB" if unit == "GB" else " GB"
    assert other not in msg.replace(size, ""), msg
    need, peak_shown, context = (_numbers(msg, unit) + [0, 0, 0])[:3]
    assert "assumed" in msg and "context" in msg, msg
    assert context == pytest.approx(CONTEXT_BYTES / scale, abs=0.01)
    assert need == pytest.approx(peak_shown * 1.1 + context, abs=0.02), msg


# ----------------------------------------------------------------------------- 6: GPS
def test_item6_keep_metadata_drops_gps_unless_keep_gps(tmp_path):
    src = img(tmp_path / "in" / "a.jpg", fmt="JPEG", exif=camera_exif().tobytes())
    out = tmp_path / "out"
    res = run("protect", src.parent, "-o", out, *FAST, "--keep-metadata")
    assert res.exit_code == 0, res.output
    png = out / "a.protected.png"
    exif = out_exif(png)
    assert exif.get(0x010F) == "Acme" and exif.get(0x0110) == "Phone 1"
    assert exif.get_ifd(0x8769).get(0x9003) == "2024:05:01 10:00:00"
    assert not exif.get_ifd(0x8825) and 0x8825 not in exif, dict(exif)
    side = json.loads(png.with_suffix(".json").read_text())
    assert side["metadata_kept"] is True and side["gps_kept"] is False
    assert "GPS" in res.stderr and "--keep-gps" in res.stderr  # says what was dropped
    res = run("protect", src.parent, "-o", out, *FAST, "--keep-metadata", "--keep-gps")
    assert res.exit_code == 0 and "1 protected, 0 already done" in res.stdout, res.output
    assert out_exif(png).get_ifd(0x8825) == GPS
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning") and "GPS" in ln]
    assert len(warn) == 1 and "--keep-gps" in warn[0], res.stderr
    assert json.loads(png.with_suffix(".json").read_text())["gps_kept"] is True


def test_item6_keep_gps_alone_is_refused(tmp_path, no_work):
    src = img(tmp_path / "a.jpg", fmt="JPEG", exif=camera_exif().tobytes())
    res = run("protect", src, "-o", tmp_path / "out", *FAST, "--keep-gps")
    line = one_error(res)
    assert res.exit_code == 2 and "--keep-metadata" in line
    assert not (tmp_path / "out").exists()


def test_item6_default_strips_everything(tmp_path):
    src = img(tmp_path / "a.jpg", fmt="JPEG", exif=camera_exif().tobytes())
    res = run("protect", src, "-o", tmp_path / "p.png", *FAST)
    assert res.exit_code == 0, res.output
    assert len(out_exif(tmp_path / "p.png")) == 0


def test_item6_docs_name_the_surviving_tags():
    from stillguard.metadata import DROPPED, KEPT

    text = (ROOT / "README.md").read_text() + (ROOT / "docs" / "hostile-inputs.md").read_text()
    assert "--keep-gps" in text
    for tag in (*KEPT, *DROPPED):
        assert tag in text, tag


# ----------------------------------------------------------------------------- 10: names
ODD = ["a\nb.png", "c\x1b[31m.png", "d\tz.png"]


def _lines_are_whole(stderr: str) -> None:
    prefixes = ("ok", "failed", "skipped", "ignored", "error:", "warning", "note:")
    for ln in stderr.splitlines():
        assert not ln.strip() or ln.startswith(prefixes), f"a split line: {ln!r}"
    assert "\x1b" not in stderr and "\t" not in stderr


def test_item10_names_escaped_in_batch_lines_and_summary(tmp_path):
    src = tmp_path / "in"
    for i, name in enumerate(ODD):
        img(src / name, seed=i)
    (src / "notes\n.txt").write_text("not a photo")
    out = tmp_path / "out\nput"
    res = run("protect", src, "-o", out, *FAST)
    assert res.exit_code == 0, res.output
    _lines_are_whole(res.stderr)
    for name in ODD:
        assert repr(str(src / name)) in res.stderr, res.stderr
    assert repr(str(src / "notes\n.txt")) in res.stderr
    summary = res.stdout.strip().splitlines()
    assert len(summary) == 1 and repr(str(out / "manifest.jsonl")) in summary[0], res.stdout
    data = json.loads(run("protect", src, "-o", out, *FAST, "--json").stdout)
    assert sorted(Path(i["input"]).name for i in data["items"]) == sorted(ODD)  # data: real names


def test_item10_error_line_escapes_the_name(tmp_path):
    bad = tmp_path / "x\ny.png"
    bad.write_text("not an image")
    res = run("protect", bad, "-o", tmp_path / "out", *FAST)
    line = one_error(res)
    assert res.exit_code == 2 and repr(str(bad)) in line, line
    res = run("protect", tmp_path / "gone\n.png", "-o", tmp_path / "out", *FAST)
    assert repr(str(tmp_path / "gone\n.png")) in one_error(res)


def test_item10_web_messages_escape_the_name(tmp_path):
    from stillguard.web.render import results_table, run_summary
    from stillguard.web.work import PhotoResult, Upload, user_message

    up = Upload(tmp_path / "tmp123.png", "a\nb\x1b.png")
    msg = user_message(InputError(f"{up.path}: not an image"), up)
    assert "\n" not in msg and "\x1b" not in msg and repr("a\nb\x1b.png") in msg, msg
    run_ = SimpleNamespace(photos=[PhotoResult(up.name, "failed", error=msg)], ok=[], demo=False)
    for html in (results_table(run_), run_summary(run_)):
        assert "\x1b" not in html and "a\\nb" in html and "\n" not in html, html
        assert html.count("a\\nb") == 1, html  # the name once, not repeated in the error


def test_item10_shown_name():
    from stillguard.names import shown_name

    assert shown_name(Path("/p/IMG 0001.jpg")) == "/p/IMG 0001.jpg"
    assert shown_name("été.png") == "été.png"
    assert shown_name("a\nb") == "'a\\nb'"
    assert shown_name("x\udcff.png") == "'x\\udcff.png'"  # undecodable bytes print, never crash


# ----------------------------------------------------------------------------- 11: web
@pytest.mark.parametrize("flag,timing", [("--no-calibrate", False), ("--calibrate", True)])
def test_item11_no_calibrate_prints_no_timing_line(monkeypatch, flag, timing):
    pytest.importorskip("gradio")
    import stillguard.web

    seen = {}
    monkeypatch.setattr(stillguard.web, "serve", lambda access, **kw: seen.update(kw))
    res = run("web", "--model", "tiny", flag)
    assert res.exit_code == 0, res.output
    assert seen["calibrate"] is timing
    assert ("timing" in res.stderr) is timing, res.stderr
    assert "loading cogvideox-i2v (tiny)" in res.stderr


# ----------------------------------------------------------------------------- 12: lossy
def test_item12_the_note_quotes_numbers_that_docs_efficacy_measured():
    from stillguard.app.lossy import MEASURED, jpeg_presets, resave_note

    doc = (ROOT / "docs" / "efficacy.md").read_text()
    for row, value in MEASURED.items():
        line = next(ln for ln in doc.splitlines() if ln.startswith(row))
        assert f"| {value} ±" in line or f"| {value} |" in line, (row, value, line)
    presets = jpeg_presets()
    assert "strong" in presets
    note = resave_note("JPEG")
    for value in MEASURED.values():
        assert value in note
    assert all(f"--preset {p}" in note for p in presets) and "verify" in note


def test_item12_jpeg_input_gets_one_note_png_input_none(tmp_path):
    src = img(tmp_path / "in" / "a.jpg", fmt="JPEG")
    img(tmp_path / "in" / "b.jpg", fmt="JPEG", seed=1)
    res = run("protect", src.parent, "-o", tmp_path / "out", *FAST)
    assert res.exit_code == 0, res.output
    notes = [ln for ln in res.stderr.splitlines() if ln.startswith("note:")]
    assert len(notes) == 1 and "JPEG" in notes[0] and "--preset strong" in notes[0], res.stderr
    side = json.loads((tmp_path / "out" / "a.protected.json").read_text())
    assert "JPEG" in side["lossy_input"]
    png = img(tmp_path / "c.png")
    res = run("protect", png, "-o", tmp_path / "c.protected.png", *FAST)
    assert res.exit_code == 0 and "note:" not in res.stderr, res.stderr
    assert "lossy_input" not in json.loads((tmp_path / "c.protected.json").read_text())


def test_item12_lossy_output_name_and_lossy_verify_say_what_it_costs(tmp_path, monkeypatch):
    src = img(tmp_path / "a.png")
    res = run("protect", src, "-o", tmp_path / "p.jpg", *FAST)
    line = one_error(res)
    assert "--preset strong" in line and "0.875" in line, line
    import stillguard.measure.evaluate
    from stillguard.errors import StillguardError

    def stop(*a, **k):
        raise StillguardError("stopped here by the test")

    monkeypatch.setattr(stillguard.measure.evaluate, "evaluate", stop)
    jpg = img(tmp_path / "p.jpg", fmt="JPEG")
    res = run("verify", src, jpg, "--model", "tiny")
    warn = [ln for ln in res.stderr.splitlines() if ln.startswith("warning: ") and "JPEG" in ln]
    assert len(warn) == 1 and "budget" in warn[0] and "0.875" in warn[0], res.stderr


# ----------------------------------------------------------------------------- 13: HEIC
def test_item13_pillow_heif_is_a_pinned_default_dependency():
    try:
        import tomllib
    except ModuleNotFoundError:  # Python 3.10
        tomllib = pytest.importorskip("tomli")
    deps = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["dependencies"]
    pinned = [d for d in deps if d.replace("_", "-").startswith("pillow-heif")]
    assert pinned and re.fullmatch(r"pillow-heif==\d+\.\d+\.\d+", pinned[0]), deps
    assert "pillow_heif" in (ROOT / "run.sh").read_text()  # an old .venv gets it installed
    from stillguard.images import image_extensions

    assert {".heic", ".heif"} <= image_extensions()


def _heic(path: Path) -> Path:
    """A 48x32 (W x H) HEIC whose left half is white, EXIF-rotated 90 deg (orientation 6), with GPS."""
    import pillow_heif

    pillow_heif.register_heif_opener()
    arr = np.zeros((32, 48, 3), np.uint8)
    arr[:, :24] = 255
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(arr).save(path, format="HEIF", exif=camera_exif(6).tobytes(), quality=95)
    return path


def test_item13_heic_round_trip_upright_and_gps_free(tmp_path):
    src = _heic(tmp_path / "in" / "phone.heic")
    out = tmp_path / "out"
    res = run("protect", src.parent, "-o", out, *FAST, "--keep-metadata")
    assert res.exit_code == 0 and "1 protected" in res.stdout, res.output
    png = out / "phone.protected.png"
    with Image.open(png) as im:
        arr = np.asarray(im.convert("L"), dtype=np.float32)
    assert arr.shape == (48, 32)  # displayed upright: 32 wide, 48 tall
    assert arr[:24].mean() > 200 and arr[24:].mean() < 55  # the white half is now on top
    exif = out_exif(png)
    assert exif.get(0x010F) == "Acme" and not exif.get_ifd(0x8825) and exif.get(0x0112) is None
    side = json.loads(png.with_suffix(".json").read_text())
    assert side["input"]["format"] == "HEIF" and side["input"]["size"] == [32, 48]
    assert side["input"]["exif_orientation"] == 6 and side["gps_kept"] is False
    res = run("protect", src, "-o", tmp_path / "plain.png", *FAST)
    assert res.exit_code == 0 and len(out_exif(tmp_path / "plain.png")) == 0, res.output


def test_item13_heic_loads_without_any_registration_first(tmp_path):
    src = _heic(tmp_path / "p.heic")
    code = "import sys; from stillguard.images import load_image; print(load_image(sys.argv[1]).info['size'])"
    env = {"PYTHONPATH": str(ROOT / "src"), "PATH": "/usr/bin:/bin", "OMP_NUM_THREADS": "1"}
    done = subprocess.run([sys.executable, "-c", code, str(src)], capture_output=True, text=True,
                          env=env, timeout=300)  # fmt: skip
    assert done.returncode == 0 and done.stdout.strip() == "[32, 48]", done.stderr[-2000:]
