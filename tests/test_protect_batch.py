"""protect_batch: several images per forward/backward, each getting what protect() gives it alone."""

from __future__ import annotations

import pytest
import torch

from stillguard import protect, protect_batch
from stillguard.errors import InputError
from stillguard.generators import Generators, per_image
from stillguard.methods.base import draw

STEPS = dict(steps=3, seed=5)


def _images(sizes: list[tuple[int, int]], seed: int = 3) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.rand(1, 3, h, w, generator=g) for h, w in sizes]


def _levels(a: torch.Tensor, b: torch.Tensor) -> tuple[int, float]:
    """Largest difference in 8-bit levels and the fraction of values that differ at all."""
    d = ((a - b).abs() * 255).round()
    return int(d.max()), float((d > 0).float().mean())


def _assert_same(singles, batch, *, rel: float = 1e-4) -> None:
    """Batched results equal the one-image results up to float rounding of batched kernels."""
    for s, b in zip(singles, batch, strict=True):
        assert torch.equal(s.original, b.original)
        worst, frac = _levels(s.image, b.image)
        assert frac < 1e-3 and worst <= 3, (worst, frac)
        assert len(s.losses) == len(b.losses)
        for x, y in zip(s.losses, b.losses, strict=True):
            assert y == pytest.approx(x, rel=rel, abs=1e-7)
        assert [t.keys() for t in s.terms] == [t.keys() for t in b.terms]


@pytest.mark.parametrize(
    "method, options",
    [
        ("vid-freeze", {}),
        ("vid-freeze", {"attention_mode": "pooled"}),
        ("advdm", {}),
        ("photoguard", {}),
        ("sds", {}),
        ("noise", {}),
        ("rollout-freeze", {"unroll": 2}),
        ("rollout-freeze", {"unroll": 2, "target": "first+input"}),
        ("rollout-collapse", {"unroll": 2}),
    ],
)
def test_a_batch_gives_each_image_what_it_gets_alone(tiny_cog, method, options) -> None:
    ims = _images([(32, 40)] * 3)
    singles = [protect(x, tiny_cog, method, method_options=options, **STEPS) for x in ims]
    batch = protect_batch(ims, tiny_cog, method, method_options=options, batch_size=3, **STEPS)
    _assert_same(singles, batch)
    assert [p.config["batch_size"] for p in batch] == [3, 3, 3]
    assert singles[0].config["batch_size"] == 1
    if method != "noise":  # noise is the same draw for every image of one seed, as alone
        # the images differ, so do their results: nothing was shared between them
        assert not torch.equal(batch[0].delta, batch[1].delta)


def test_images_are_grouped_by_size_and_returned_in_input_order(tiny_cog) -> None:
    ims = _images([(32, 40), (40, 32), (32, 40), (32, 40)])
    events = []
    out = protect_batch(ims, tiny_cog, "advdm", batch_size=2, callback=events.append, **STEPS)
    assert [tuple(p.image.shape[-2:]) for p in out] == [(32, 40), (40, 32), (32, 40), (32, 40)]
    assert [p.config["batch_size"] for p in out] == [2, 1, 2, 1]
    for x, p in zip(ims, out, strict=True):  # each result belongs to its own input
        assert torch.equal(p.original, torch.round(x * 255) / 255)
    assert {e.images for e in events} == {(0, 2), (3,), (1,)}
    assert all(len(e.images) in (1, 2) and e.steps == 3 for e in events)


def test_spaces_and_eot_transforms_draw_per_image(tiny_cog) -> None:
    """Each image draws its own EOT transforms in every space.

    The whole runs are compared with transforms whose output is continuous in the image (crop,
    blur): then batched and one-image runs differ only by float rounding, which a sign step turns
    into a different pixel only where a gradient is about zero. The differentiable JPEG is not
    continuous (it quantises its DCT coefficients): a rounding difference of 1e-7 can move a
    coefficient across a quantisation step, and from there the runs legitimately part (seen on one
    machine: the second step's loss differed by 7e-5, 10 levels on 0.6 % of pixel values). With
    JPEG, the first step - same draws, same start - must still agree.
    """
    ims = _images([(32, 32)] * 2)
    for space in ("lab", "dct", "dual"):
        kw = dict(space=space, eot=["crop:4", "blur:1"], eot_samples=2, **STEPS)
        singles = [protect(x, tiny_cog, "photoguard", **kw) for x in ims]
        _assert_same(singles, protect_batch(ims, tiny_cog, "photoguard", batch_size=2, **kw))
        kw = dict(space=space, eot=["jpeg:75", "blur:1"], eot_samples=2, **STEPS)
        singles = [protect(x, tiny_cog, "photoguard", **kw) for x in ims]
        batch = protect_batch(ims, tiny_cog, "photoguard", batch_size=2, **kw)
        for s, b in zip(singles, batch, strict=True):
            assert b.losses[0] == pytest.approx(s.losses[0], rel=1e-4, abs=1e-7)


def test_an_ensemble_batch_equals_its_one_image_runs(tiny_cog, tiny_svd) -> None:
    ims = _images([(32, 32)] * 2)
    singles = [protect(x, [tiny_cog, tiny_svd], "vid-freeze", **STEPS) for x in ims]
    batch = protect_batch(ims, [tiny_cog, tiny_svd], "vid-freeze", batch_size=2, **STEPS)
    _assert_same(singles, batch)
    assert "svd/loss" in batch[1].terms[0]


def test_a_method_that_cannot_batch_runs_one_image_at_a_time(tiny_cog) -> None:
    ims = _images([(32, 32)] * 2)
    opts = {"attention_mode": "sampled", "max_queries": 8}
    singles = [protect(x, tiny_cog, "vid-freeze", method_options=opts, **STEPS) for x in ims]
    batch = protect_batch(ims, tiny_cog, "vid-freeze", method_options=opts, batch_size=2, **STEPS)
    for s, b in zip(singles, batch, strict=True):
        assert torch.equal(s.image, b.image) and s.losses == b.losses
        assert b.config["batch_size"] == 1


@pytest.mark.parametrize("bad", [0, -1, 1.5, True, "2"])
def test_bad_batch_sizes_are_refused(tiny_cog, bad) -> None:
    with pytest.raises(InputError, match="batch_size"):
        protect_batch(_images([(32, 32)]), tiny_cog, "advdm", batch_size=bad, **STEPS)


def test_empty_or_stacked_inputs_are_refused(tiny_cog) -> None:
    with pytest.raises(InputError, match="non-empty"):
        protect_batch([], tiny_cog, "advdm", **STEPS)
    with pytest.raises(InputError, match="shape"):
        protect(torch.rand(2, 3, 32, 32), tiny_cog, "advdm", **STEPS)


def test_each_image_draws_from_its_own_generator(tiny_cog) -> None:
    """draw() on a batch gives image b the timestep and noise a one-image run with its generator
    gets; and the per-image generators are seeded alike."""
    gens = Generators.seeded(11, 3)
    t, noise = draw(tiny_cog, gens)
    t1, noise1 = draw(tiny_cog, torch.Generator().manual_seed(11))
    assert t.shape[0] == noise.shape[0] == 3
    for b in range(3):
        assert torch.equal(t[b : b + 1], t1) and torch.equal(noise[b : b + 1], noise1)
    one = per_image(lambda g: torch.rand(1, 2, generator=g), torch.Generator().manual_seed(0))
    assert one.shape == (1, 2)
