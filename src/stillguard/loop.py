"""protect(): the one optimisation loop (sign-gradient PGD with EOT), its settings and its result.

The loop never touches files: it takes a tensor and returns a :class:`Protected` (pure data);
:mod:`stillguard.app.outputs` saves it. Its nine settings live in one :class:`LoopConfig`, validated
once, which presets, the CLI and batches build too.

Choices (documented here once; the papers do not fix them):
    * the input is rounded to 8 bits first: the "original" is what a PNG of the input holds, and the
      budget is guaranteed against it on the saved file;
    * the step size is a fraction of the space's own budget, going from ``step_size`` to
      ``final_step_size`` over the run (``cosine``, ``linear``) or staying at ``step_size``
      (``constant``); large steps explore, small final steps settle;
    * the **last iterate** is returned, not the best one: each step's loss is a one-sample estimate
      at a random timestep and noise, so the lowest logged value mostly picks a lucky draw, and the
      decaying step size already makes the last iterate stable;
    * EOT: draw ``k`` of step ``i`` applies ONE of the given transforms, taken round-robin
      (``(i * eot_samples + k) mod n``), with its random parameters from the run's generator; the
      loss is the mean over the ``eot_samples`` draws (gradients accumulated draw by draw, so memory
      does not grow with ``eot_samples``); use the ``random`` transform to pick at random instead;
    * every random draw (start point, timesteps, noise, transforms, query subsets) comes from one
      CPU ``torch.Generator`` seeded with ``seed``: same inputs and seed give the same PNG bytes;
    * a method may fix some settings (:attr:`~stillguard.methods.base.Method.loop_overrides`): the
      ``noise`` baseline is a run with zero steps from a random start, through the same code;
    * after the loop the image is rounded to 8 bits and clipped into ``round(eps*255)`` levels of
      the original, so ``|png - original|_inf <= round(eps*255)/255`` holds on the saved file.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .errors import InputError
from .settings import SCHEDULES, LoopConfig
from .targets import Targets
from .tensors import check_image, to_uint8
from .versions import package_versions

log = logging.getLogger(__name__)

TOY_WARNING = (
    "protected against the tiny/toy model only: this does not protect against real image-to-video "
    "models; run protect() with a real adapter (e.g. load_adapter('cogvideox-i2v', model=...))"
)


@dataclass
class ProgressEvent:
    """Sent to ``protect(callback=...)`` after every step; ``step`` counts from 1 to ``steps``."""

    step: int
    steps: int
    loss: float
    terms: dict[str, float]
    elapsed: float


@dataclass
class Protected:
    """The result of :func:`protect`: pure data (save it with :func:`stillguard.save_protected`).

    Attributes:
        original: the input rounded to 8 bits, ``(1,3,H,W)`` in [0,1].
        image: the protected image, 8-bit valued, ``(1,3,H,W)`` in [0,1].
        delta: ``image - original``.
        losses: loss per step (mean over EOT draws); empty when no step was taken.
        terms: named loss terms per step.
        config: everything needed to reproduce the run (JSON-able).
        seconds: wall time of :func:`protect`.
    """

    original: Tensor
    image: Tensor
    delta: Tensor
    losses: list[float] = field(default_factory=list)
    terms: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    @property
    def real_model(self) -> bool:
        """False when computed against the tiny/toy model (it protects nothing real)."""
        adapter = self.config.get("adapter") or {}
        if isinstance(adapter, list):  # an ensemble: real only if every member is
            return bool(adapter) and all(a.get("real_model", False) for a in adapter)
        return bool(adapter.get("real_model", False))

    def to_uint8(self) -> Any:
        """The protected image as 8-bit pixels. Shape: ``(H, W, 3)`` uint8 numpy array."""
        return to_uint8(self.image)


def step_fraction(it: int, steps: int, start: float, end: float, schedule: str) -> float:
    """Step size of step ``it`` (0-based) as a fraction of the space's own budget."""
    if schedule == "constant" or steps <= 1:
        return start
    p = it / (steps - 1)
    if schedule == "linear":
        return start + (end - start) * p
    if schedule == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * p))
    raise InputError(f"unknown schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}")


def resolve_loop(method: Any, config: LoopConfig) -> LoopConfig:
    """Apply the method's fixed settings and check that the run makes sense for it.

    Raises:
        InputError: an optimising method with zero steps (that is the ``noise`` baseline).
    """
    config = config.replace(**method.loop_overrides) if method.loop_overrides else config
    if method.optimizes and config.steps < 1:
        raise InputError(
            f"method {method.registry_name!r} needs steps >= 1 (zero steps from a random start is "
            "the same-budget noise baseline: use --method noise)"
        )
    return config


def build_method(method: str | Any, options: dict[str, Any] | None, targets: Any) -> Any:
    """The method object, checked against every target (a :class:`Targets`) before any work.

    Raises:
        CapabilityError: the adapter lacks what the method needs.
        InputError: an unknown option, or no adapter for a method that needs one.
    """
    from . import plugins  # noqa: F401  (fills the registries)
    from .registry import METHODS

    m = METHODS.build(method, **(options or {}))
    targets.check(m)
    return m


def build_space(
    space: str | Any | None, eps: float | None, options: dict[str, Any] | None, method: Any
) -> Any:
    """The perturbation space (``None``: the method's default) with the loop's ``eps``."""
    from .registry import SPACES

    opts = dict(options or {})
    given = space if space is not None else method.default_space
    if eps is not None and isinstance(given, str):
        opts["eps"] = float(eps)
    sp = SPACES.build(given, **opts)
    if eps is not None and not math.isclose(sp.eps, float(eps)):
        raise InputError(
            f"eps={eps} disagrees with the space object's eps={sp.eps}; set it in one place"
        )
    return sp


def protect(
    image: Tensor,
    adapter: Any,
    method: str | Any = "vid-freeze",
    *,
    config: LoopConfig | None = None,
    space: str | Any | None = None,
    method_options: dict[str, Any] | None = None,
    space_options: dict[str, Any] | None = None,
    weights: Sequence[float] | None = None,
    offload: bool | str = False,
    callback: Callable[[ProgressEvent], None] | None = None,
    **settings: Any,
) -> Protected:
    """Protect one image against an image-to-video model, or against several at once.

    Args:
        image: the photo, any resolution (the adapter resizes inside its differentiable encode).
        adapter: the target model (an :class:`~stillguard.adapters.base.Adapter`), or a list of
            them for an ensemble (see :mod:`stillguard.targets`); may be ``None`` only for
            methods that do not optimise (``noise``).
        method: a registered method name (built with ``method_options``) or a method object.
        config: the loop settings (:class:`LoopConfig`); default ``LoopConfig()``.
        space: a registered space name (built with ``space_options``) or object; ``None`` takes the
            method's ``default_space``.
        method_options, space_options: options for methods/spaces given by name.
        weights: an ensemble's member weights (default equal).
        offload: an ensemble keeps only the active member on the run's device (``True``: the
            first member's device; or a device name), the others on the CPU.
        callback: called with a :class:`ProgressEvent` after every step.
        **settings: loop settings overriding ``config`` (``eps``, ``steps``, ``seed``, ...; see
            :class:`LoopConfig`).
    Returns:
        :class:`Protected`.
    Raises:
        CapabilityError: the method needs something the adapter does not offer (before any work).
        InputError: bad image, setting or option.
    Shape:
        ``image`` ``(1,3,H,W)`` (or ``(3,H,W)``) in [0,1] -> ``Protected.image`` ``(1,3,H,W)``.
    """
    t_start = time.perf_counter()
    cfg = (config or LoopConfig()).replace(**settings) if settings else (config or LoopConfig())
    targets = Targets(adapter, weights, offload=offload)
    m = build_method(method, method_options, targets)
    cfg = resolve_loop(m, cfg)
    sp = build_space(space, cfg.eps, space_options, m)
    transforms = cfg.transforms()
    x = (torch.round(check_image(image) * 255) / 255).to(targets.device)
    gen = torch.Generator().manual_seed(cfg.seed)
    budget = round(sp.eps * 255)
    config_out: dict[str, Any] = {
        "method": m.describe(),
        "space": sp.describe(),
        "adapter": targets.describe(),
        **cfg.to_dict(),
        "eps": sp.eps,
        "budget_255": budget,
        "image_size": [int(x.shape[-2]), int(x.shape[-1])],
        "versions": package_versions(),
    }
    if targets.many:
        config_out["targets"] = [mem.label for mem in targets.members]
        config_out["real_model"] = targets.is_real
    losses: list[float] = []
    terms_log: list[dict[str, float]] = []
    targets.setup(m, x, gen)
    param = m.start(sp, x, gen, cfg.random_start)
    draws = cfg.eot_samples if transforms else 1
    for it in range(cfg.steps):
        param = param.detach().requires_grad_(True)
        grad = torch.zeros_like(param)
        total, terms = 0.0, {}
        for k in range(draws):
            xi = sp.to_image(x, param)
            if transforms:
                xi = transforms[(it * draws + k) % len(transforms)](xi, gen)
            g_xi, value, tm = targets.gradient(m, xi, gen, it)
            (g,) = torch.autograd.grad(xi, param, grad_outputs=g_xi / draws)
            grad += g
            total += value / draws
            for key, val in tm.items():
                terms[key] = terms.get(key, 0.0) + val / draws
        frac = step_fraction(it, cfg.steps, cfg.step_size, cfg.final_step_size, cfg.schedule)
        param = sp.project(x, sp.step(param.detach(), grad, frac, it))
        losses.append(total)
        terms_log.append(terms)
        log.debug("step %d/%d loss %.6g %s", it + 1, cfg.steps, total, terms)
        if callback is not None:
            callback(ProgressEvent(it + 1, cfg.steps, total, terms, time.perf_counter() - t_start))
    with torch.no_grad():
        adv = sp.to_image(x, param.detach())

    # quantise, then clip into the 8-bit box around the 8-bit original
    x8 = torch.round(x * 255)
    a8 = torch.round(adv.detach().clamp(0, 1) * 255)
    a8 = torch.minimum(torch.maximum(a8, x8 - budget), x8 + budget).clamp(0, 255)
    out = (a8 / 255).cpu()
    orig = (x8 / 255).cpu()
    seconds = time.perf_counter() - t_start
    if targets.members[0].adapter is not None and not targets.is_real:
        log.warning(TOY_WARNING)
    log.info(
        "protected with %s in %.1fs (%d steps, final loss %s)",
        m.registry_name,
        seconds,
        len(losses),
        f"{losses[-1]:.6g}" if losses else "n/a",
    )
    return Protected(orig, out, out - orig, losses, terms_log, config_out, seconds)
