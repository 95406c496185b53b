"""Vid-Freeze's text-token convention: video rows against video keys in every attention mode."""

from __future__ import annotations

import pytest
import torch

from stillguard.losses import attention_frobenius, uniform_attention_floor
from stillguard.plugins import METHODS


def test_the_video_block_is_the_softmax_over_video_keys() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6, requires_grad=True)  # 2 text + 4 video tokens, every row
    got = attention_frobenius([logits.softmax(-1)], text=[2])
    want = attention_frobenius([logits[..., 2:, 2:].softmax(-1)])
    torch.testing.assert_close(got, want)
    g_got, g_want = (torch.autograd.grad(v, logits)[0] for v in (got, want))
    torch.testing.assert_close(g_got, g_want)
    rows = logits[..., [3, 5], :]  # sampled: video rows only, against every key
    torch.testing.assert_close(attention_frobenius([rows.softmax(-1)], text=[2]),
                               attention_frobenius([rows[..., 2:].softmax(-1)]))  # fmt: skip
    assert uniform_attention_floor([logits], text=[2]) == pytest.approx(1 / 4)
    probs = logits.softmax(-1)
    assert float(attention_frobenius([probs], text=[0])) == float(attention_frobenius([probs]))


def _loss(adapter, x, mode: str) -> float:
    m = METHODS.build("vid-freeze", attention_mode=mode, max_queries=10_000)
    state = m.setup(adapter, x, torch.Generator().manual_seed(0))
    with torch.no_grad():
        loss, terms = m.loss(adapter, x, torch.Generator().manual_seed(7), state)
    return float(loss), terms


def test_exact_and_all_rows_sampled_optimise_the_same_maps(tiny_cog, image) -> None:
    """With every video row drawn, sampled and exact are the same loss: text is out of both."""
    exact, t_exact = _loss(tiny_cog, image, "exact")
    sampled, _ = _loss(tiny_cog, image, "sampled")
    assert exact == pytest.approx(sampled, rel=1e-5)
    assert t_exact["excess"] > 0  # above the uniform floor over the video keys


def test_attention_estimates_benchmark_scores_every_estimate_against_exact() -> None:
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "benchmarks" / "attention_estimates.py"
    spec = importlib.util.spec_from_file_location("attention_estimates", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    rows = mod.main(["--models", "tiny", "--sizes", "9x64", "--queries", "8,10000", "--draws", "1"])
    by = {r["estimate"]: r for r in rows}
    assert by["exact"]["cosine"] == 1.0 and by["exact"]["mib"] > 0
    assert by["sampled 10000 rows"]["cosine"] == pytest.approx(1.0, abs=1e-5)  # every row: exact
    assert by["sampled 8 rows"]["cosine"] < 0.999
    assert (
        by["sampled 8 rows"]["mib"] < by["exact"]["mib"]
        and by["pooled"]["mib"] < by["exact"]["mib"]
    )
