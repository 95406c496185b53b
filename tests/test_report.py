"""write_report / text table / video writers, on a report from the scripted fake adapter."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

import imageio.v3 as iio
import numpy as np
import pytest
import torch
from helpers import FakeAdapter, Wipe, mark, photo
from PIL import Image

from stillguard.measure import evaluate as ev
from stillguard.measure import media as video
from stillguard.measure.report import write_report
from stillguard.measure.result import Report
from stillguard.measure.table import text_table
from stillguard.measure.verdict import VERDICTS


@dataclass
class FakeProtected:
    losses: list[float] = field(default_factory=lambda: [1.0, 0.7, 0.5, 0.45])
    terms: list[dict[str, float]] = field(default_factory=list)


@pytest.fixture(scope="module")
def report() -> Report:
    img = photo()
    return ev.evaluate(img, mark(img), FakeAdapter(), seeds=(0, 1), transforms=("identity", Wipe()))


def _refs(page: str) -> list[str]:
    return re.findall(r'(?:src|href)="([^"]+)"', page)


def test_report_writes_only_existing_local_files(report, tmp_path: Path) -> None:
    index = write_report(report, tmp_path / "rep", protected_result=FakeProtected())
    page = index.read_text(encoding="utf-8")
    refs = _refs(page)
    assert {"videos.gif", "frames.png", "motion.png", "ratios.png", "loss.png"} <= set(refs)
    assert {"original.png", "protected.png", "protected_diff_x10.png"} <= set(refs)
    for ref in refs:
        assert "://" not in ref and not ref.startswith("/"), ref
        assert (index.parent / ref).is_file(), ref
    assert not re.search(r"https?://", page)
    for text in ("frozen", "not protected", "motion_ratio &lt;= 0.25", "tiny/toy"):
        assert text in page
    assert (index.parent / "report.json").is_file() and (index.parent / "table.txt").is_file()


def test_report_media_content(report, tmp_path: Path) -> None:
    index = write_report(report, tmp_path)
    gif = iio.imread(index.parent / "videos.gif", index=None)
    f, h = report.videos["clean"].shape[1], report.videos["clean"].shape[-2]
    k = video.scale_for(h, 160)
    assert gif.shape[:3] == (f, h * k, (3 * 48 + 2 * 2) * k)
    # the protected panel is frozen in the fake model: its GIF frames do not change
    panel = gif[:, :, (48 + 2) * k : (2 * 48 + 2) * k]
    assert np.abs(panel.astype(int) - panel[:1]).max() <= 2
    assert np.abs(gif[:, :, : 48 * k].astype(int) - gif[:1, :, : 48 * k]).max() > 50
    diff = np.asarray(Image.open(index.parent / "protected_diff_x10.png")).astype(int)
    assert diff[20:, 20:].min() == diff[20:, 20:].max() == 128  # unchanged pixels are mid-gray
    assert not (index.parent / "loss.png").exists()  # no Protected given


def test_text_table_is_aligned_and_complete(report) -> None:
    table = text_table(report)
    lines = table.splitlines()
    start = lines.index(next(ln for ln in lines if ln.startswith("transform")))
    block = lines[start : start + 1 + len(report.summary)]
    col = block[0].index("verdict")
    assert all(ln[col:].strip() in VERDICTS for ln in block[1:])
    assert "±" in table  # two seeds give a spread
    assert "lpips" in table and "not available" in table


def test_video_writers(tmp_path: Path) -> None:
    g = torch.Generator().manual_seed(0)
    v = torch.rand(5, 3, 12, 14, generator=g)
    u8 = video.to_uint8(v)
    assert u8.shape == (5, 12, 14, 3) and u8.dtype == np.uint8
    assert video.to_uint8(v[None]).shape == (5, 12, 14, 3)
    assert video.to_uint8(v[:1]).shape == (12, 14, 3)
    assert np.array_equal(u8[2], (v[2].permute(1, 2, 0) * 255).round().byte().numpy())
    assert video.side_by_side([v, v, v], gap=2).shape == (5, 3, 12, 3 * 14 + 4)
    assert video.frame_strip([v, v], gap=1).shape == (3, 2 * 12 + 1, 5 * 14 + 4)
    assert video.upscale(u8, 3).shape == (5, 36, 42, 3)
    png = video.write_png(v[0], tmp_path / "a.png", scale=2)
    assert np.array_equal(np.asarray(Image.open(png))[::2, ::2], u8[0])
    gif = iio.imread(video.write_gif(v, tmp_path / "a.gif", scale=2), index=None)
    assert gif.shape[:3] == (5, 24, 28)
    mp4 = video.write_mp4(v, tmp_path / "a.mp4", scale=2)
    if mp4 is not None:  # imageio-ffmpeg installed
        assert mp4.stat().st_size > 0
    with pytest.raises(Exception, match="same shape|share a shape"):
        video.side_by_side([v, v[:, :, :10]])
