"""benchmarks/seed_variants.py on the tiny model: every row measured, the table says what ran."""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def seed_variants():
    spec = importlib.util.spec_from_file_location(
        "seed_variants", ROOT / "benchmarks" / "seed_variants.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_variants_are_measured_and_tabled(seed_variants, tmp_path) -> None:
    args = ["--model", "tiny", "--images", "1", "--seeds", "0", "--steps", "2",
            "--out", str(tmp_path), "--work", str(tmp_path / "w")]  # fmt: skip
    res = seed_variants.main(["--study", "vf-budget", "--only", "0,2", *args])
    assert [r["variant"]["label"] for r in res] == ["vid-freeze 8/255", "same-budget noise 32/255"]
    (vf,) = res[0]["images"]
    assert round(vf["linf"]) == 8 and len(vf["drop"]) == 1 and vf["excess_ratio"] > 0
    assert round(res[1]["images"][0]["linf"]) == 32
    text = (tmp_path / "seed-variants-vf-budget.md").read_text()
    assert "| vid-freeze 8/255 |" in text and "1 held-out images x 1 generation seeds" in text
    res = seed_variants.main(["--study", "terms", "--only", "2", *args])  # without IRA
    (rec,) = res[0]["images"]
    assert set(rec["share"]) == {"irc", "diffusion"}  # the terms that ran, from the sidecar
