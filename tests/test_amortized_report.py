"""``benchmarks/amortized_report.py``: the diagnostics of the amortized benchmark (pure, fast).

The report is a script beside the benchmark, so it is loaded from its file.
"""

from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def report():
    path = ROOT / "benchmarks" / "amortized_report.py"
    spec = importlib.util.spec_from_file_location("amortized_report", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _doc(noise_loss: float) -> dict:
    """Two protecting variants and noise on three photos; motion ratio = 0.5 + loss ratio / 2."""
    records, diag = [], []
    cases = {"amortized": ("cog", [0.6, 0.7, 0.8]), "PGD": ("cog", [0.5, 0.6, 0.9]),
             "noise": (None, [noise_loss] * 3)}  # fmt: skip
    for label, (on, losses) in cases.items():
        for i, loss in enumerate(losses):
            motion = 0.5 + loss / 2 if on else 0.1  # noise breaks the line if it were counted
            rows = [{"transform": t, "seed": s, "motion_ratio": motion, "dissim_ratio": 1.0,
                     "input_fidelity_drop": 0.0, "video_ssim": 1.0}
                    for t in ("identity", "jpeg:75") for s in (0, 1)]  # fmt: skip
            evals = {"cogvideox-toy": rows, "wan-toy": rows}
            records.append({"variant": label, "on": on, "image": f"p{i}", "protect_seconds": 1.0,
                            "linf_255": 8.0, "loss": loss, "loss_clean": 1.0, "evals": evals})  # fmt: skip
            ratio = {"cogvideox-toy": loss, "wan-toy": loss}
            diag.append({"variant": label, "image": f"p{i}", "train_loss_ratio": ratio})
    return {"variants": list(cases), "records": records, "diagnostics": diag,
            "validation_ratios": {"single": {"cogvideox-i2v/ratio": 0.7}}}  # fmt: skip


def test_diagnostics_average_per_variant_and_leave_noise_out_of_the_correlation(report) -> None:
    d = report.diagnostics(_doc(noise_loss=5.0))
    assert d["variants"]["PGD"]["cogvideox-toy"]["mean"] == pytest.approx(2 / 3)
    assert d["variants"]["amortized"]["wan-toy"]["median"] == pytest.approx(0.7)
    # the six protecting (variant, photo) pairs lie on one line; noise (off it) is left out
    assert d["loss_vs_motion"]["cogvideox-toy"] == {"r": pytest.approx(1.0), "n": 6}


def test_the_markdown_has_the_diagnostics_table(report) -> None:
    doc = _doc(noise_loss=1.0) | {"command": "x", "date": "d", "seconds": 1.0, "threads": 1,
                                  "images": ["p0", "p1", "p2"], "seeds": [0, 1]}  # fmt: skip
    doc["summary"] = report.summarise(doc)
    md = report.markdown(doc)
    assert "## Diagnostics" in md and "single: cogvideox-i2v 0.700" in md
    assert "| PGD | 0.667 ± 0.170 (0.600) |" in md
    assert "Pearson r = 1.00 over 6" in md
