"""The models one protection is computed against: one adapter, or an ensemble of several.

Ensemble protection (stillguard's own; none of the papers or peers offers it): a person protecting
a photo does not know which model an attacker will use, so the loop can minimise one method's loss
on several targets at once (``protect(x, [adapter_a, adapter_b], method)``).

Choices:
    * **gradient-normalised mean**: at every step each member's gradient with respect to the image
      is divided by its mean absolute value, then the members are averaged with ``weights``
      (default equal). The issue proposed normalising each loss by its value on the clean image;
      we normalise gradients instead because the loop takes *sign* steps, so what matters is each
      member's vote on the direction, and a member whose loss has a larger scale (or a clean value
      near zero, or of the other sign, as for the negated losses of AdvDM or rollout-collapse)
      would otherwise decide the sign alone. A one-member "ensemble" is the plain loss: no
      normalisation, the exact gradient;
    * gradients are accumulated member by member (each member's graph is freed before the next is
      built), so peak activation memory is one model's; ``offload=True`` (or a device name such as
      ``"cuda"``) additionally keeps only the active model on the run's device (the others wait on
      the CPU), for when their weights do not fit together;
    * every member draws its timesteps and noise from the run's generator in member order, so the
      same seed gives the same bytes; an EOT draw is shared by all members of a step;
    * a method a member does not support is refused before any work, naming the member.

Shape:
    the candidate images ``(B, 3, H, W)`` in ``[0, 1]`` (``B > 1``: a batch, see
    :func:`stillguard.loop.protect_batch`); their gradient the same.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .errors import InputError, StillguardError

log = logging.getLogger(__name__)


@dataclass
class Member:
    """One target of a protection: its adapter, its weight and the method's state for it."""

    adapter: Any
    weight: float
    label: str
    state: Any = None


class Targets:
    """One adapter or several, as the loop sees them (see the module docstring)."""

    def __init__(
        self,
        adapters: Any,
        weights: Sequence[float] | None = None,
        *,
        offload: bool | str = False,
    ) -> None:
        many = isinstance(adapters, (list, tuple))
        items = list(adapters) if many else [adapters]
        if not items:
            raise InputError("protect needs at least one target model; pass an adapter")
        if len(items) > 1 and any(a is None for a in items):
            raise InputError("an ensemble needs an adapter for every member, got None")
        if weights is None:
            weights = [1.0] * len(items)
        weights = [float(w) for w in weights]
        if len(weights) != len(items) or any(not w > 0 for w in weights):
            raise InputError(
                f"weights must be {len(items)} positive numbers (one per target), got {weights}"
            )
        total = sum(weights)
        names = [getattr(a, "registry_name", "none") for a in items]
        labels = [n if names.count(n) == 1 else f"{n}#{i}" for i, n in enumerate(names)]
        self.members = [
            Member(a, w / total, lab) for a, w, lab in zip(items, weights, labels, strict=True)
        ]
        self.many = len(items) > 1
        self.offload = bool(offload)
        first = items[0]
        if isinstance(offload, str):
            self.device = torch.device(offload)
        else:
            self.device = first.device if first is not None else torch.device("cpu")

    @property
    def adapters(self) -> list[Any]:
        return [m.adapter for m in self.members]

    @property
    def is_real(self) -> bool:
        """True only when every member is a real model (toy/tiny protect nothing real)."""
        return all(a is not None and a.is_real for a in self.adapters)

    def describe(self) -> Any:
        """One adapter's description, or a list of them (with weights) for an ensemble."""
        if not self.many:
            a = self.members[0].adapter
            return a.describe() if a is not None else None
        return [{**m.adapter.describe(), "weight": m.weight} for m in self.members]

    def check(self, method: Any) -> None:
        """Refuse, before any work, a method some member cannot run; then let the method see
        every target (:meth:`~stillguard.methods.base.Method.prepare`)."""
        for m in self.members:
            if m.adapter is None:
                if method.optimizes:
                    raise InputError(
                        f"method {method.registry_name!r} needs a target model; pass an adapter"
                    )
                continue
            method.check(m.adapter)
        method.prepare(self.adapters)

    def setup(self, method: Any, x: Tensor, generator: torch.Generator) -> None:
        """The method's no-grad precompute, once per member."""
        for m in self.members:
            with self._active(m):
                xm = x.to(m.adapter.device) if m.adapter is not None else x
                m.state = method.setup(m.adapter, xm, generator)

    def report(self, method: Any) -> Any:
        """The method's :meth:`~stillguard.methods.base.Method.report` of the run: one member's
        dict, or ``{label: dict}`` for an ensemble (empty when the method reports nothing)."""
        reports = {m.label: method.report(m.state) for m in self.members if m.state is not None}
        reports = {k: v for k, v in reports.items() if v}
        if not self.many:
            return next(iter(reports.values()), {})
        return reports

    def gradient(
        self, method: Any, xi: Tensor, generator: Any, step: int
    ) -> tuple[Tensor, Tensor, dict[str, Tensor]]:
        """The joint loss's gradient with respect to the candidate images ``xi``, each image's
        value and the named terms per image (``member/term`` for an ensemble).

        Shape:
            ``xi`` ``(B,3,H,W)`` -> gradient ``(B,3,H,W)``, values ``(B,)`` float64, each term
            ``(B,)`` float64.
        Raises:
            StillguardError: a member's loss is not finite.
        """
        n = xi.shape[0]
        grad = torch.zeros_like(xi)
        value = torch.zeros(n, dtype=torch.float64)
        terms: dict[str, Tensor] = {}
        for m in self.members:
            with self._active(m):
                leaf = xi.detach().to(m.adapter.device).requires_grad_(True)
                loss, tm = method.loss(m.adapter, leaf, generator, m.state)
                if loss.numel() != n:
                    raise StillguardError(
                        f"method {method.registry_name!r} gave {loss.numel()} loss value(s) for "
                        f"{n} image(s); a batched method returns one loss per image"
                    )
                if not torch.isfinite(loss).all():
                    who = f" on {m.label}" if self.many else ""
                    raise StillguardError(
                        f"method {method.registry_name!r} gave a non-finite loss{who} at step "
                        f"{step + 1}; try a smaller eps or float32 (dtype=torch.float32)"
                    )
                (g,) = torch.autograd.grad(loss.sum(), leaf)
                g = g.to(xi.device, xi.dtype)
                if self.many:  # each image's gradient normalised by its own mean magnitude
                    scale = g.abs().flatten(1).mean(1).clamp_min(1e-20)
                    g = g / scale.view(-1, *([1] * (g.dim() - 1)))
                grad += m.weight * g
                values = per_image_values(loss, n)
                value += m.weight * values
                prefix = f"{m.label}/" if self.many else ""
                if self.many:
                    terms[prefix + "loss"] = values
                terms.update({prefix + k: per_image_values(v, n) for k, v in tm.items()})
        return grad, value, terms

    def _active(self, member: Member) -> Any:
        return _OnDevice(member.adapter, self.device) if self.offload else _Nothing()


def per_image_values(value: Any, n: int) -> Tensor:
    """A loss or term (a float, a 0-dim or a ``(n,)`` tensor) as ``(n,)`` float64 on the CPU."""
    t = torch.as_tensor(value.detach() if isinstance(value, Tensor) else value)
    return t.to("cpu", torch.float64).reshape(-1).expand(n)


class _Nothing:
    def __enter__(self) -> None:
        return None

    def __exit__(self, *exc: Any) -> None:
        return None


class _OnDevice:
    """Moves an adapter to ``device`` for the duration of a block, then back to the CPU."""

    def __init__(self, adapter: Any, device: torch.device) -> None:
        self.adapter, self.device = adapter, device

    def __enter__(self) -> None:
        if self.adapter is not None:
            self.adapter.to(self.device)

    def __exit__(self, *exc: Any) -> None:
        if self.adapter is not None:
            self.adapter.to("cpu")
