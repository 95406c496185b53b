"""Vid-Freeze's text-token convention: video rows against video keys in every attention mode."""

from __future__ import annotations

import pytest
import torch

from stillguard.methods._video_maps import video_block
from stillguard.plugins import METHODS


def test_the_video_block_is_the_softmax_over_video_keys() -> None:
    torch.manual_seed(0)
    logits = torch.randn(2, 3, 6, 6)  # 2 text + 4 video tokens, exact: every row
    block = video_block(logits.softmax(-1), text=2)
    torch.testing.assert_close(block, logits[..., 2:, 2:].softmax(-1))
    rows = logits[..., [3, 5], :]  # sampled: video rows only, against every key
    torch.testing.assert_close(video_block(rows.softmax(-1), text=2), rows[..., 2:].softmax(-1))
    probs = logits.softmax(-1)
    assert video_block(probs, text=0) is probs


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
