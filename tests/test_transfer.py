"""``benchmarks/transfer.py``: the goal arithmetic (fast) and the harness end to end on the tiny
random models (slow: it protects through two models and their ensemble and generates videos).

The harness is a script, not a package module, so it is loaded from its file.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def transfer():
    spec = importlib.util.spec_from_file_location("transfer", ROOT / "benchmarks" / "transfer.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _cell(mean: float) -> dict:
    return {"motion_ratio": {"mean": mean, "std": 0.0, "median": mean, "n": 2}}


def test_goals_compare_the_ensemble_with_each_white_box_effect(transfer):
    matrix = {"m": {
        "a": {"a": _cell(0.5), "b": _cell(0.95)},
        "b": {"a": _cell(0.9), "b": _cell(0.6)},
        "ensemble": {"a": _cell(0.55), "b": _cell(0.8)},
        "noise": {"a": _cell(1.0), "b": _cell(0.98)},
    }}  # fmt: skip
    goals = {g["member"]: g for g in transfer.goals(matrix, ["a", "b"])}
    assert math.isclose(goals["a"]["share"], 0.45 / 0.5)  # 90 % of the white-box effect
    assert goals["a"]["met"] is True
    assert math.isclose(goals["b"]["share"], 0.2 / 0.4)  # 50 %
    assert goals["b"]["met"] is False
    assert goals["a"]["cross_motion_ratio"] == {"b": 0.9}
    assert goals["b"]["noise_motion_ratio"] == 0.98


def test_no_white_box_effect_is_never_a_met_goal(transfer):
    matrix = {"m": {"a": {"a": _cell(1.05)}, "ensemble": {"a": _cell(0.9)}}}
    (g,) = transfer.goals(matrix, ["a"])
    assert g["met"] is False and math.isnan(g["share"])
    assert "n/a" in transfer._share(g)


def test_model_specs_parse_and_refuse_bad_ones(transfer):
    assert transfer.parse_models("x=wan-i2v:toy-wan, y=cogvideox-i2v:toy") == {
        "x": ("wan-i2v", "toy-wan"),
        "y": ("cogvideox-i2v", "toy"),
    }
    with pytest.raises(SystemExit, match="NAME=ADAPTER:MODEL"):
        transfer.parse_models("wan-i2v")


@pytest.mark.slow
def test_harness_on_tiny_models_fills_every_cell_and_caches(transfer, tmp_path):
    argv = ["--tiny", "--images", "1", "--seeds", "0", "--steps", "1", "--methods", "vid-freeze"]
    argv += ["--work", str(tmp_path / "work"), "--out", str(tmp_path / "docs")]
    doc = transfer.main(argv)
    rows = doc["matrix"]["vid-freeze"]
    assert list(rows) == ["cogvideox-tiny", "wan-tiny", "ensemble", "noise"]
    for row in rows.values():
        assert list(row) == ["cogvideox-tiny", "wan-tiny"]
        for cell in row.values():
            mr = cell["motion_ratio"]
            assert mr["n"] == 1 and 0 < mr["mean"] < 5 and mr["std"] == 0
            assert cell["protect_seconds"]["n"] == 1
    assert rows["noise"]["wan-tiny"]["protect_seconds"]["mean"] < 1.0  # no model, no steps
    assert len(doc["goals"]) == 2
    saved = json.loads((tmp_path / "docs" / "transfer.json").read_text())
    assert saved["run"]["members"] == ["cogvideox-tiny", "wan-tiny"]
    md = (tmp_path / "docs" / "transfer.md").read_text()
    assert "| computed on | cogvideox-tiny | wan-tiny | protect s |" in md
    pngs = sorted((tmp_path / "work").rglob("*.png"))
    assert len(pngs) == 4  # three computed-on rows and the noise baseline, one image each
    stamps = [p.stat().st_mtime_ns for p in pngs]
    again = transfer.main(argv)  # everything is read back from the cache
    assert [p.stat().st_mtime_ns for p in pngs] == stamps
    assert json.dumps(again["matrix"], default=float) == json.dumps(doc["matrix"], default=float)
    ens = rows["ensemble"]["wan-tiny"]
    assert ens["loss_start"]["n"] == 1 and math.isfinite(ens["loss_end"]["mean"])
