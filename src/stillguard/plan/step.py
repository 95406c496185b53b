"""One protection step, measured: peak live bytes (broken down) and FLOPs.

The step is the one ``protect()`` runs (``stillguard/protect.py``): the method's no-grad setup on
the clean image once per image, then per PGD step ``x_i = space.to_image(x, param)``, ``loss =
method.loss(adapter, x_i, gen, state)`` and the gradient of ``loss`` with respect to ``param``. The two
calls into the method API are isolated in :func:`setup_method` and :func:`step_gradient`, so a
change of that API (e.g. ``setup`` returning a state) is one edit here.

:func:`measure` runs them under a :class:`~.memory.MemoryTracker` and a FLOP counter, on real
tensors (a measurement) or on fake ones (the planner) alike.
"""

from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..generators import Generators
from . import flops as F
from .memory import MemoryTracker


def setup_method(method: Any, adapter: Any, x: Tensor, gen: Any) -> Any:
    """The method's once-per-image precompute; returns its :class:`~stillguard.methods.base.State`."""
    return method.setup(adapter, x, gen)


def step_gradient(
    method: Any,
    state: Any,
    adapter: Any,
    space: Any,
    x: Tensor,
    param: Tensor,
    gen: Any,
) -> Tensor:
    """One PGD step's loss and gradient as ``protect()`` computes them (one EOT draw).

    Shape:
        ``x`` ``(B,3,H,W)``; ``param`` the space's parameter; returns ``d loss / d param`` (of
        the per-image losses' sum).
    """
    param = param.detach().requires_grad_(True)
    xi = space.to_image(x, param)
    loss, _terms = method.loss(adapter, xi, gen, state)
    (grad,) = torch.autograd.grad(loss.sum(), param)
    return grad


@dataclass
class Measurement:
    """What :func:`measure` saw.

    Attributes:
        peak_bytes: largest live storage bytes over the setup and one step.
        breakdown: live bytes per category at that peak (``weights``, ``inputs``,
            ``method_state``, ``activations``, ``backward``; see :mod:`.memory`).
        resident_bytes: bytes live before the setup (weights + inputs).
        setup_flops, step_flops: counted FLOPs of the setup and of one step.
        step_flops_by_op: step FLOPs per ATen operator.
    """

    peak_bytes: int
    breakdown: dict[str, int]
    resident_bytes: int
    setup_flops: int
    step_flops: int
    step_flops_by_op: dict[str, int] = field(default_factory=dict)


def resident_tensors(modules: dict[str, torch.nn.Module], adapter: Any) -> list[Tensor]:
    """Parameters and buffers of the resident modules plus tensors held by the adapter."""
    out: list[Tensor] = []
    for m in modules.values():
        out.extend(m.parameters())
        out.extend(m.buffers())
    for value in vars(adapter).values():
        if isinstance(value, Tensor):
            out.append(value)
    return out


def measure(
    adapter: Any,
    method: Any,
    space: Any,
    image: Tensor,
    *,
    modules: dict[str, torch.nn.Module],
    seed: int = 0,
    random_start: bool = True,
    mode: Any = None,
) -> Measurement:
    """Run the method's setup and one protection step; track memory and count FLOPs.

    Args:
        adapter, method, space: built objects (the method already checked against the adapter).
        image: the clean images ``(B,3,H,W)`` in [0,1] on the adapter's device (``B > 1``: one
            step of ``protect_batch`` on a batch of B).
        modules: the adapter's resident modules (their weights are counted as ``weights``).
        mode: a ``FakeTensorMode`` to run under (the planner), or ``None`` for real tensors.
    """
    tracker = MemoryTracker(fake_scalars=mode is not None)
    n = image.shape[0]
    gens = Generators.seeded(seed, n)
    gen = gens if n > 1 else gens[0]  # as protect_batch hands them to the method
    outer = mode if mode is not None else contextlib.nullcontext()
    with outer:
        tracker.add(resident_tensors(modules, adapter), "weights")
        with tracker:
            tracker.add(image, "inputs")
            resident = tracker.current
            setup_count = F.counter()
            with tracker.phase("method_state"), setup_count:
                state = setup_method(method, adapter, image, gen)
            with tracker.phase("inputs"):
                param = torch.cat(
                    [space.init(image[b : b + 1], gens[b], random_start) for b in range(n)]
                )
            step_count = F.counter()
            with step_count:
                grad = step_gradient(method, state, adapter, space, image, param, gen)
            del grad, param
    return Measurement(
        peak_bytes=tracker.peak,
        breakdown=dict(tracker.peak_by_category),
        resident_bytes=resident,
        setup_flops=int(setup_count.get_total_flops()),
        step_flops=int(step_count.get_total_flops()),
        step_flops_by_op=F.by_operator(step_count),
    )
