"""Every adapter family's tiny model gives the outputs pinned in ``tests/data/goldens/``.

The golden files hold what the loss sees for fixed seeds (``sample_timesteps``, ``encode``,
``denoise`` with a ``capture`` open, a short ``rollout`` and ``generate``); see
:mod:`goldens` for what is stored and how to regenerate the files deliberately. They pin
behaviour across refactors: moving code must not move a single output.

Tolerance: every value must lie within ``TOL`` times the largest magnitude of its tensor (its
scale). The reason: the tiny models are float32 and another machine's kernels (vector width,
thread count, even the memory alignment of the weights, see ``test_save_and_load_round_trip``)
sum in another order. A reordered float32 sum of ``n`` terms errs by at most about
``n · 1.2e-7`` of the terms' magnitude; the widest reductions here have a few thousand terms, so
one op can move by up to ~5e-4 of its scale in the worst case and by ~1e-5 typically (measured
here with misaligned weights on 1 and 2 threads: at most 1.3e-5, on DynamiCrafter's
``rollout``). ``TOL = 1e-3`` sits above that worst case, while a change of the maths (a lost
scale factor, a shifted timestep, swapped frames, another resize) moves outputs by percents.
"""

from __future__ import annotations

import goldens
import pytest
import torch

TOL = 1e-3


@pytest.mark.parametrize("case", list(goldens.CASES))
def test_tiny_outputs_match_the_goldens(case):
    ref = goldens.read(case)
    new = goldens.outputs(case)
    assert sorted(new) == sorted(ref), f"{case}: outputs differ in kind from the golden file"
    bad = []
    for key, want in ref.items():
        got = new[key]
        if got.shape != want.shape:
            bad.append(f"{key}: shape {tuple(got.shape)} != {tuple(want.shape)}")
            continue
        scale = float(want.abs().max().clamp_min(1e-12))
        err = float((got - want).abs().max())
        if not err <= TOL * scale:
            bad.append(f"{key}: max error {err:.3g} > {TOL} x scale {scale:.3g}")
    assert not bad, f"{case} moved from its golden outputs:\n" + "\n".join(bad)


def test_every_registered_target_has_a_golden_case():
    from stillguard.adapters import ADAPTERS

    covered = {name for name, _ in goldens.CASES.values()}
    assert covered == set(ADAPTERS.names())
    assert all(goldens.file(c).is_file() for c in goldens.CASES)


def test_the_tolerance_catches_a_small_change_of_the_maths(monkeypatch):
    """A 1% change of the timestep fed to the denoiser is far outside the tolerance."""
    a = goldens.build("wan-i2v")
    ref = goldens.read("wan-i2v")["denoise.pred"]
    g = torch.Generator().manual_seed(0)
    t = a.sample_timesteps(2, g)[:1]
    noise = torch.randn(a.latent_shape(1), generator=g)
    with torch.no_grad():
        same = goldens.summary(a.denoise(goldens.image(), t, noise).pred)
        moved = goldens.summary(a.denoise(goldens.image(), t * 1.01, noise).pred)
    scale = float(ref.abs().max())
    assert float((same - ref).abs().max()) <= TOL * scale
    assert float((moved - ref).abs().max()) > 10 * TOL * scale
