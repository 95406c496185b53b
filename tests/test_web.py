"""`stillguard web`: the jobs, the access rules, the API through gradio_client, and a real browser.

The server runs in this process on a free local port with the tiny model. The browser tests
(marker ``browser``) drive the system's Chromium through Playwright; without Chromium they are
skipped with a reason saying how to enable them, and the test summary prints a loud line
(``conftest.py``). With ``STILLGUARD_REQUIRE_BROWSER=1`` (CI) a missing browser fails instead.
Screenshots of every step go to ``tmp_path`` and to ``test-artifacts/web/`` (git-ignored).
"""

from __future__ import annotations

import inspect
import json
import os
import re
import shutil
import socket
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest
from helpers import HOSTILE, rand_image
from PIL import Image
from typer.testing import CliRunner

pytest.importorskip("gradio", reason="the web extra is not installed: pip install -e '.[dev]'")

from stillguard.web import Access, Limits, Session, check_access, start  # noqa: E402
from stillguard.web.choices import (  # noqa: E402
    DEFAULT_MAX_PHOTOS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_MB,
    budget_note,
)
from stillguard.web.runner import run_streaming  # noqa: E402
from stillguard.web.work import Cancelled, Upload, protect_uploads  # noqa: E402

ARTIFACTS = Path(__file__).resolve().parents[1] / "test-artifacts" / "web"


def _photo(path: Path, size: tuple[int, int] = (72, 56), seed: int = 0) -> Path:
    """A smooth photo-like RGB image (w, h) saved at ``path``."""
    low = rand_image(size[1] // 8, size[0] // 8, seed=seed)
    Image.fromarray(low).resize(size, Image.Resampling.BICUBIC).save(path)
    return path


def _pixels(path: Path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


@pytest.fixture(scope="module")
def session(tiny_cog, tmp_path_factory) -> Session:
    out = tmp_path_factory.mktemp("web-out")
    return Session(tiny_cog, "cogvideox-i2v", "tiny", out_root=out, limits=Limits())


# ----------------------------------------------------------------------------- jobs
def test_protect_keeps_size_and_budget_and_writes_the_cli_sidecar(session, tmp_path):
    src = _photo(tmp_path / "my holiday photo.png", (75, 53))
    steps_seen = []
    run = protect_uploads(session, [Upload(src, src.name)], "fast", 6, steps=2, seed=3,
                          on_step=lambda *a: steps_seen.append(a[3]))  # fmt: skip
    (p,) = run.photos
    assert p.status == "ok" and p.png.name == "my_holiday_photo.protected.png"
    assert Image.open(p.png).size == (75, 53)
    assert np.abs(_pixels(p.png) - _pixels(src)).max() <= 6
    side = json.loads(p.sidecar.read_text())
    assert side["config"]["steps"] == 2 and side["config"]["seed"] == 3
    assert side["budget_255"] == 6 and side["real_model"] is False and "warning" in side
    assert side["input"]["path"] == src.name and side["front"] == "web"
    assert run.downloads == [p.png, p.sidecar] and steps_seen == [0, 1, 2]
    assert set(p.previews) == {"original", "protected", "difference"}
    assert p.metrics["linf_255"] <= 6 and p.metrics["size"] == [75, 53]


def _bad(tmp_path: Path) -> dict[str, tuple[Path, str]]:
    cases = {}
    for key, (make, pattern) in HOSTILE.items():
        if key not in ("missing", "directory"):
            (tmp_path / key).mkdir()
            cases[key] = (make(tmp_path / key), pattern)
    small = tmp_path / "tiny.png"
    Image.fromarray(rand_image(8, 8)).save(small)
    anim = tmp_path / "anim.gif"
    frames = [Image.fromarray(rand_image(32, 32, seed=s)) for s in range(2)]
    frames[0].save(anim, save_all=True, append_images=frames[1:])
    cases.update(small=(small, "too small"), animated=(anim, "animated"))
    return cases


def test_bad_uploads_get_the_cli_words_nothing_written(session, tmp_path):
    cases = _bad(tmp_path)
    many = Session(session.adapter, "cogvideox-i2v", "tiny", out_root=tmp_path / "out",
                   limits=Limits(max_photos=len(cases)))  # fmt: skip
    ups = [Upload(p, f"upload-{k}{p.suffix}") for k, (p, _) in cases.items()]
    run = protect_uploads(many, ups, "fast", 8, steps=1)
    assert not (tmp_path / "out").exists() and run.folder is None and not run.downloads
    for (key, (path, pattern)), res in zip(cases.items(), run.photos, strict=True):
        assert res.status == "failed", key
        assert res.error.startswith(f"upload-{key}"), res.error  # the person's name, not our path
        assert str(path) not in res.error and any(w in res.error for w in pattern.split("|"))


def test_limits_count_pixels_and_photos(session, tmp_path):
    src = _photo(tmp_path / "a.png", (40, 40))
    small = Session(session.adapter, "cogvideox-i2v", "tiny", out_root=tmp_path / "o",
                    limits=Limits(max_pixels=1000, max_photos=1))  # fmt: skip
    run = protect_uploads(small, [Upload(src, "a.png")], "fast", 8, steps=1)
    assert "megapixels is over the limit" in run.photos[0].error
    with pytest.raises(Exception, match="over this server's limit of 1"):
        protect_uploads(small, [Upload(src, "a.png")] * 2, "fast", 8, steps=1)
    with pytest.raises(Exception, match="no photo given"):
        protect_uploads(small, [], "fast", 8)


def test_several_photos_one_zip_and_repeated_names(session, tmp_path):
    a = _photo(tmp_path / "a.png", seed=1)
    run = protect_uploads(session, [Upload(a, "x.png"), Upload(a, "x.png")], "fast", 8, steps=1)
    assert [p.png.name for p in run.ok] == ["x.protected.png", "x-2.protected.png"]
    (z,) = run.downloads
    assert sorted(zipfile.ZipFile(z).namelist()) == sorted(
        ["x.protected.png", "x.protected.json", "x-2.protected.png", "x-2.protected.json"]
    )


def test_stop_raises_before_anything_is_saved(session, tmp_path):
    a = _photo(tmp_path / "a.png")
    before = set(session.out_root.iterdir())
    calls = []
    with pytest.raises(Cancelled):
        protect_uploads(session, [Upload(a, "a.png")], "fast", 8, steps=50,
                        on_step=lambda *e: calls.append(e), stopped=lambda: len(calls) >= 2)  # fmt: skip
    assert set(session.out_root.iterdir()) == before and len(calls) == 2


def test_old_run_folders_are_pruned(session, tmp_path):
    s = Session(session.adapter, "cogvideox-i2v", "tiny", out_root=tmp_path)
    old, new = tmp_path / "old", tmp_path / "new"
    for f in (old, new):
        (f / "preview").mkdir(parents=True)
    os.utime(old, (time.time() - 2 * 24 * 3600,) * 2)
    assert s.prune() == 1 and not old.exists() and new.exists()


def test_closing_the_stream_stops_the_job():
    ran, progress = [], []

    def job(report, stopped):
        while not stopped():
            ran.append(1)
            report(0.5, "working")
            time.sleep(0.01)
        raise Cancelled()

    gen = run_streaming(job, lambda f, desc: progress.append(desc), lambda: "idle")
    assert next(gen) == "idle"
    gen.close()  # what gradio does when Stop is pressed or the tab is closed
    n = len(ran)
    time.sleep(0.3)
    assert len(ran) <= n + 1 and progress[-1] == "working"


def test_session_choices_budget_and_estimates(session):
    assert session.config("fast").loop.steps == 30 and session.config("default").loop.steps == 100
    assert session.config("strong").loop.eps == pytest.approx(16 / 255)
    assert session.config("default", 12).loop.eps == pytest.approx(12 / 255)
    for bad in (3, 17, 8.5):
        with pytest.raises(Exception, match="outside the page's range"):
            session.config("default", bad)
    with pytest.raises(Exception, match="unknown protection"):
        session.config("extreme")
    assert "4/255" in budget_note(4) and "grain" in budget_note(8) and "Visible" in budget_note(16)
    fresh = Session(session.adapter, "cogvideox-i2v", "tiny", out_root=session.out_root)
    assert fresh.expected_seconds("fast") is None
    fresh.record("fast", 3.0, 30)
    assert fresh.expected_seconds("fast") == pytest.approx(3.0)
    assert fresh.expected_seconds("default") == pytest.approx(10.0)  # the same cost per step
    assert fresh.expected_seconds("strong") == pytest.approx(20.0)  # borrowed until measured
    fresh.record("fast", 1.0, 10)
    assert fresh.expected_seconds("fast", 10) == pytest.approx(1.0) and fresh.demo


# ----------------------------------------------------------------------------- access, CLI
def test_access_rules(tmp_path):
    assert check_access().host == "127.0.0.1" and check_access("::1").credentials is None
    with pytest.raises(Exception, match="--auth USER:PASSWORD"):
        check_access("0.0.0.0")
    assert "WITHOUT a password" in check_access("0.0.0.0", no_auth=True).open_warning
    assert check_access("0.0.0.0", auth="ann:pw").credentials == [("ann", "pw")]
    f = tmp_path / "users"
    f.write_text("# people\nann:pw1\nbob:p:w\n")
    assert check_access("10.0.0.2", auth_file=f).credentials == [("ann", "pw1"), ("bob", "p:w")]
    for kw, pattern in (({"auth": "nocolon"}, "USER:PASSWORD"),
                        ({"auth": "a:b", "no_auth": True}, "contradict"),
                        ({"auth_file": tmp_path / "none"}, "cannot read")):  # fmt: skip
        with pytest.raises(Exception, match=pattern):
            check_access("0.0.0.0", **kw)


def test_cli_refuses_an_open_address_before_loading_anything():
    from stillguard import cli

    res = CliRunner().invoke(cli.app, ["web", "--model", "tiny", "--host", "0.0.0.0"])
    assert res.exit_code == 2 and "--auth USER:PASSWORD" in res.stderr
    res = CliRunner().invoke(cli.app, ["web", "--help"])
    for opt in ("--auth-file", "--no-auth", "--max-upload-mb", "--max-pixels", "--model"):
        assert opt in res.output
    from stillguard.cli.web_cmd import web

    defaults = {p.name: p.default for p in inspect.signature(web).parameters.values()}
    assert defaults["max_pixels"] == DEFAULT_MAX_PIXELS
    assert defaults["max_upload_mb"] == DEFAULT_MAX_UPLOAD_MB
    assert defaults["max_photos"] == DEFAULT_MAX_PHOTOS


# ----------------------------------------------------------------------------- served page
def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_the_command_serves_the_page_on_localhost(tmp_path):
    import subprocess
    import sys
    import urllib.request

    port = _free_port()
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(sys.path), "OMP_NUM_THREADS": "1"}
    cmd = [sys.executable, "-m", "stillguard.cli", "web", "--model", "tiny", "--port", str(port),
           "--no-calibrate"]  # fmt: skip
    with open(tmp_path / "log", "wb") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=tmp_path)
        try:
            deadline, html = time.monotonic() + 120, b""
            said = f"serving on http://127.0.0.1:{port}/"
            while time.monotonic() < deadline and proc.poll() is None:
                if said in (tmp_path / "log").read_text():
                    html = urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=10).read()
                    break
                time.sleep(0.5)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    out = (tmp_path / "log").read_text()
    assert b"stillguard" in html and "does NOT protect" in out, out


@pytest.fixture(scope="module")
def server(session):
    page = start(session, Access(port=_free_port()), block=False)
    yield page.local_url
    page.close()


def test_api_protect_and_verify_through_gradio_client(server, tmp_path):
    from gradio_client import Client, handle_file

    src = _photo(tmp_path / "api.png", (64, 48), seed=5)
    client = Client(server, verbose=False, download_files=str(tmp_path / "dl"))
    status, gallery, _table, files, _orig, png_out, budget = client.predict(
        [handle_file(str(src))], "fast", 8, 2, 0, api_name="/protect"
    )  # fmt: skip
    assert "Protected 1 photo" in status and len(gallery) == 3 and budget == 8
    png = next(Path(f) for f in files if str(f).endswith(".png"))
    assert Image.open(png).size == (64, 48) and np.abs(_pixels(png) - _pixels(src)).max() <= 8
    assert _pixels(Path(png_out)).tolist() == _pixels(png).tolist()  # the Verify input
    verdict, gif, gif_jpeg, table, report = client.predict(
        handle_file(str(src)), handle_file(png_out), budget, api_name="/verify"
    )
    assert "as saved:" in verdict and "after jpeg 75" in verdict
    assert "motion ratio" in table and Image.open(gif).n_frames > 1
    assert json.loads(Path(report).read_text())["config"]["transforms"] == ["identity", "jpeg:75"]


# ----------------------------------------------------------------------------- browser
def _chromium() -> str | None:
    return (
        os.environ.get("STILLGUARD_CHROMIUM")
        or shutil.which("chromium")
        or shutil.which("chromium-browser")
    )


@pytest.fixture(scope="module")
def browser():
    how = ("install Chromium from the system packages (apt-get install chromium, or set "
           "STILLGUARD_CHROMIUM=/path/to/chromium) and the dev extra (pip install -e '.[dev]')")  # fmt: skip
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        exe, why = None, f"browser tests not run: playwright is not installed; {how}"
    else:
        exe, why = _chromium(), f"browser tests not run: no Chromium found; {how}"
    if exe is None:
        if os.environ.get("STILLGUARD_REQUIRE_BROWSER") == "1":
            pytest.fail(why + " (STILLGUARD_REQUIRE_BROWSER=1)")
        pytest.skip(why)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, args=["--no-sandbox"])
        yield b
        b.close()


@pytest.fixture
def shot(tmp_path, request):
    """``shot(page, name)``: a full-page screenshot in tmp_path, copied to test-artifacts/web/."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    prefix = request.node.name.removeprefix("test_browser_")

    def take(page, name: str) -> Path:
        path = tmp_path / f"{prefix}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        shutil.copy(path, ARTIFACTS / path.name)
        return path

    return take


def _open(browser, url, outside: list[str]):
    page = browser.new_page(viewport={"width": 1400, "height": 1000}, accept_downloads=True)
    local = (url.rstrip("/"), "data:", "blob:")
    page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
    page.goto(url)
    page.wait_for_selector("#sg-protect")
    return page


def _protect(page, files, steps: int) -> None:
    page.locator("#sg-photos input[type=file]").set_input_files([str(f) for f in files])
    page.get_by_text("Advanced").click()
    box = page.locator("#sg-steps input")
    for _ in range(20):  # the page may still re-render the field just after it opened: re-type
        box.fill(str(steps))
        box.press("Tab")
        page.wait_for_timeout(250)
        if box.input_value() == str(steps):
            break
    assert box.input_value() == str(steps), "the steps field did not keep the value typed in"
    page.locator("#sg-protect").click()


@pytest.mark.browser
def test_browser_protect_download_verify_and_a_broken_file(browser, server, shot, tmp_path):
    outside: list[str] = []
    page = _open(browser, server, outside)
    banner = page.locator("#sg-banner")
    assert (
        banner.is_visible() and "NOT protected against real image-to-video" in banner.inner_text()
    )
    shot(page, "1-start")
    src = _photo(tmp_path / "portrait.png", (96, 72), seed=7)
    _protect(page, [src], steps=2)
    page.wait_for_selector("#sg-downloads a", timeout=60_000)
    assert "Protected 1 photo(s) at 8/255" in page.locator("#sg-status").inner_text()
    assert page.locator("#sg-gallery img").count() >= 3
    shot(page, "2-protected")
    with page.expect_download() as info:
        page.locator("#sg-downloads a").first.click()
    assert info.value.suggested_filename == "portrait.protected.png"
    png = tmp_path / "downloaded.png"
    info.value.save_as(png)
    assert Image.open(png).size == (96, 72)
    assert np.abs(_pixels(png) - _pixels(src)).max() <= 8
    page.locator("#sg-verify").click()
    page.wait_for_selector("#sg-verdict .sg-verdict", timeout=120_000)
    assert "as saved:" in page.locator("#sg-verdict").inner_text()
    page.wait_for_selector("#sg-video img")
    shot(page, "3-verified")
    page.close()

    page = _open(browser, server, outside)
    broken = HOSTILE["truncated-png"][0](tmp_path)
    _protect(page, [broken], steps=1)
    page.wait_for_selector("#sg-status .sg-error", timeout=60_000)
    text = page.locator("#sg-status").inner_text()
    assert "t.png: the image data is broken" in text or "t.png: broken" in text, text
    assert "Nothing was protected and nothing was saved" in text and "Traceback" not in text
    shot(page, "4-broken-file")
    page.close()
    assert not outside, f"the page fetched from outside the server: {outside}"


@pytest.mark.browser
def test_browser_password_and_upload_limit(browser, session, shot, tmp_path):
    small = Session(session.adapter, "cogvideox-i2v", "tiny", out_root=tmp_path / "out",
                    limits=Limits(max_upload_mb=0.02))  # fmt: skip
    page_app = start(small, Access(port=_free_port(), credentials=[("ann", "pw")]), block=False)
    try:
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.goto(page_app.local_url)
        page.wait_for_selector("input[type=password]")
        assert page.locator("#sg-protect").count() == 0
        shot(page, "1-login")
        page.fill("input[type=text]", "ann")
        page.fill("input[type=password]", "pw")
        page.keyboard.press("Enter")
        page.wait_for_selector("#sg-protect")
        big = _photo(tmp_path / "big.png", (400, 300))
        assert big.stat().st_size > 0.02 * 2**20
        page.locator("#sg-photos input[type=file]").set_input_files(str(big))
        page.get_by_text("exceed the maximum allowed size").first.wait_for(timeout=20_000)
        shot(page, "2-too-large")
        page.close()
    finally:
        page_app.close()


@pytest.mark.browser
def test_browser_closed_tab_stops_its_work(browser, server, session, shot, tmp_path):
    page = _open(browser, server, [])
    assert session.lock.acquire(timeout=120), "an earlier job still holds the model"
    session.lock.release()
    cancelled = session.cancelled
    _protect(page, [_photo(tmp_path / "long.png")], steps=3000)
    # generous: on a loaded 2-core machine the first step can take long to reach the page
    try:
        page.get_by_text(re.compile(r"step \d+ of 3000")).first.wait_for(timeout=180_000)
    except Exception:
        shot(page, "0-no-progress")  # what the page showed instead, for the failure report
        raise
    shot(page, "1-running")
    page.close()
    deadline = time.monotonic() + 20
    while session.cancelled == cancelled and time.monotonic() < deadline:
        time.sleep(0.1)
    assert session.cancelled == cancelled + 1
    assert session.lock.acquire(timeout=20), "the cancelled job did not end"
    session.lock.release()
