"""The planner against reality: the same step measured on real tensors, for small models.

:func:`measured` loads a real (tiny or toy) adapter, runs the very step :func:`.planner.plan`
runs (:func:`.step.measure`) on real CPU tensors and returns what the tracker and the counter saw.
``tests/test_plan.py`` and ``benchmarks/plan_agreement.py`` compare it with the plan.
"""

from __future__ import annotations

from typing import Any

import torch

from ..registry import METHODS, SPACES
from .build import instantiate, preset_settings, quiet
from .fake import modules
from .step import Measurement, measure


def measured(
    target: str,
    model: str = "tiny",
    *,
    method: str = "vid-freeze",
    method_options: dict[str, Any] | None = None,
    preset: str | None = None,
    image_size: tuple[int, int] | None = None,
    adapter_options: dict[str, Any] | None = None,
    adapter: Any = None,
    batch_size: int = 1,
) -> Measurement:
    """One real protection step (float32, CPU) of ``target``/``model``, measured like a plan.

    ``adapter`` may be given to reuse a loaded one (it must be ``model`` of ``target`` with
    ``adapter_options``). ``batch_size`` images go through the step together.
    """
    from .. import plugins  # noqa: F401  (fills the registries)

    run = preset_settings(preset)
    ad = adapter
    if ad is None:
        with quiet():
            ad, _ = instantiate(target, model, dtype=torch.float32,
                                options=dict(adapter_options or {}), device="cpu")  # fmt: skip
    m = METHODS.build(method, **(method_options or {}))
    m.check(ad)
    sp_opts = dict(run["space_options"])
    if run["eps"] is not None:
        sp_opts["eps"] = float(run["eps"])
    space = SPACES.build(run["space"] or m.default_space, **sp_opts)
    h, w = image_size or (ad.height, ad.width)
    image = torch.rand(batch_size, 3, h, w, generator=torch.Generator().manual_seed(1))
    return measure(ad, m, space, image.to(ad.device), modules=modules(ad), seed=run["seed"],
                   random_start=run["random_start"])  # fmt: skip
