"""protect() and protect_batch(): the one optimisation loop (sign-gradient PGD with EOT).

``protect`` runs it on one image, ``protect_batch`` on several images of one size per forward and
backward pass, each image getting what ``protect`` gives it alone (see :func:`protect_batch` and
:mod:`stillguard.generators`). The loop never touches files: it returns :class:`Protected` results
(pure data) that :mod:`stillguard.app.outputs` saves. Its nine settings live in one
:class:`LoopConfig`, validated once, which presets, the CLI and batches build too.

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
from typing import Any

import torch
from torch import Tensor

from .errors import InputError
from .generators import Generators
from .protected import TOY_WARNING, ProgressEvent, Protected, quantise
from .settings import LoopConfig, split_settings, step_fraction
from .targets import Targets
from .tensors import check_image
from .versions import package_versions

__all__ = ["TOY_WARNING", "ProgressEvent", "Protected", "protect", "protect_batch"]

log = logging.getLogger(__name__)


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
            :class:`LoopConfig`), or options of a method given by name (``protector=...``).
    Returns:
        :class:`Protected`.
    Raises:
        CapabilityError: the method needs something the adapter does not offer (before any work).
        InputError: bad image, setting or option.
    Shape:
        ``image`` ``(1,3,H,W)`` (or ``(3,H,W)``) in [0,1] -> ``Protected.image`` ``(1,3,H,W)``.
    """
    x = check_image(image)  # one image (1,3,H,W): several go through protect_batch
    kwargs = dict(config=config, space=space, method_options=method_options)
    kwargs.update(space_options=space_options, weights=weights, offload=offload)
    return protect_batch(
        [x], adapter, method, batch_size=1, callback=callback, **kwargs, **settings
    )[0]


def protect_batch(
    images: Sequence[Tensor],
    adapter: Any,
    method: str | Any = "vid-freeze",
    *,
    batch_size: int = 4,
    config: LoopConfig | None = None,
    space: str | Any | None = None,
    method_options: dict[str, Any] | None = None,
    space_options: dict[str, Any] | None = None,
    weights: Sequence[float] | None = None,
    offload: bool | str = False,
    callback: Callable[[ProgressEvent], None] | None = None,
    **settings: Any,
) -> list[Protected]:
    """Protect several images, ``batch_size`` images of one size per forward/backward pass.

    Each image gets what :func:`protect` would give it alone with the same settings and seed: its
    own random stream (:mod:`stillguard.generators`), its own loss (a batchable method's loss is
    one value per image) and its own sign step. Only float rounding in batched kernels differs,
    which can move a few pixels by one 8-bit level. Images are grouped by size (a batch holds
    one size), in input order; a method that is not batchable (sampled attention rows,
    Anti-I2V, I2VGuard) runs one image at a time. Arguments as :func:`protect`.

    Returns:
        one :class:`Protected` per image, in input order.
    Raises:
        InputError: ``batch_size`` below 1, an empty list, a bad image or setting.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(f"batch_size must be an integer >= 1, got {batch_size!r}")
    xs = [check_image(im) for im in images]
    if not xs:
        raise InputError("protect_batch takes a non-empty list of images (1,3,H,W)")
    settings, method_options = split_settings(method, settings, method_options)
    cfg = (config or LoopConfig()).replace(**settings) if settings else (config or LoopConfig())
    targets = Targets(adapter, weights, offload=offload)
    m = build_method(method, method_options, targets)
    cfg = resolve_loop(m, cfg)
    sp = build_space(space, cfg.eps, space_options, m)
    if batch_size > 1 and not m.batchable():
        log.info("method %s runs one image at a time (not batchable)", m.registry_name)
        batch_size = 1
    by_size: dict[tuple[int, int], list[int]] = {}
    for i, x in enumerate(xs):
        by_size.setdefault((int(x.shape[-2]), int(x.shape[-1])), []).append(i)
    out: dict[int, Protected] = {}
    for group in by_size.values():
        for k in range(0, len(group), batch_size):
            idx = group[k : k + batch_size]
            batch = torch.cat([xs[i] for i in idx])
            for i, p in zip(idx, _run(batch, targets, m, sp, cfg, idx, callback), strict=True):
                out[i] = p
    return [out[i] for i in range(len(xs))]


def _run(
    images: Tensor,
    targets: Targets,
    m: Any,
    sp: Any,
    cfg: LoopConfig,
    idx: Sequence[int],
    callback: Callable[[ProgressEvent], None] | None,
) -> list[Protected]:
    """The loop on one batch ``(B,3,H,W)`` of same-size images; one :class:`Protected` each."""
    t_start = time.perf_counter()
    n = images.shape[0]
    transforms = cfg.transforms()
    x = (torch.round(images * 255) / 255).to(targets.device)
    gens = Generators.seeded(cfg.seed, n)
    gen = gens if n > 1 else gens[0]  # a one-image run hands the methods a plain generator
    budget = round(sp.eps * 255)
    config_out: dict[str, Any] = {
        "method": m.describe(),
        "space": sp.describe(),
        "adapter": targets.describe(),
        **cfg.to_dict(),
        "eps": sp.eps,
        "budget_255": budget,
        "image_size": [int(x.shape[-2]), int(x.shape[-1])],
        "batch_size": n,
        "versions": package_versions(),
    }
    if targets.many:
        config_out["targets"] = [mem.label for mem in targets.members]
        config_out["real_model"] = targets.is_real
    losses: list[list[float]] = [[] for _ in range(n)]
    terms_log: list[list[dict[str, float]]] = [[] for _ in range(n)]
    targets.setup(m, x, gen)
    param = torch.cat([m.start(sp, x[b : b + 1], gens[b], cfg.random_start) for b in range(n)])
    draws = cfg.eot_samples if transforms else 1
    for it in range(cfg.steps):
        param = param.detach().requires_grad_(True)
        grad = torch.zeros_like(param)
        total = torch.zeros(n, dtype=torch.float64)
        terms: dict[str, Tensor] = {}
        for k in range(draws):
            xi = sp.to_image(x, param)
            if transforms:
                tf = transforms[(it * draws + k) % len(transforms)]
                xi = torch.cat([tf(xi[b : b + 1], gens[b]) for b in range(n)])
            g_xi, values, tm = targets.gradient(m, xi, gen, it)
            (g,) = torch.autograd.grad(xi, param, grad_outputs=g_xi / draws)
            grad += g
            total += values / draws
            for key, val in tm.items():
                terms[key] = terms.get(key, 0.0) + val / draws
        frac = step_fraction(it, cfg.steps, cfg.step_size, cfg.final_step_size, cfg.schedule)
        param = sp.project(x, sp.step(param.detach(), grad, frac, it))
        for b in range(n):
            losses[b].append(float(total[b]))
            terms_log[b].append({key: float(val[b]) for key, val in terms.items()})
        log.debug("step %d/%d loss %s", it + 1, cfg.steps, total.tolist())
        if callback is not None:
            mean_terms = {key: float(val.mean()) for key, val in terms.items()}
            elapsed = time.perf_counter() - t_start
            event = ProgressEvent(it + 1, cfg.steps, float(total.mean()), mean_terms, elapsed)
            event.images = tuple(idx)
            callback(event)
    with torch.no_grad():
        orig, out = quantise(x, sp.to_image(x, param.detach()), budget)
    if report := targets.report(m):
        config_out["method_report"] = report
    seconds = (time.perf_counter() - t_start) / n
    if targets.members[0].adapter is not None and not targets.is_real:
        log.warning(TOY_WARNING)
    log.info("protected %d image(s) with %s in %.1fs each", n, m.registry_name, seconds)
    return [
        Protected(
            orig[b : b + 1],
            out[b : b + 1],
            out[b : b + 1] - orig[b : b + 1],
            losses[b],
            terms_log[b],
            dict(config_out),
            seconds,
        )  # fmt: skip
        for b in range(n)
    ]
