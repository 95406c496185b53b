"""Amortized protection: one forward pass of a trained protector network, optionally refined.

Idea: FastProtect and DiffVax amortize attacks on image editors (one network pass instead of a
PGD loop per photo); this is stillguard's own for image-to-video models. A protector
(:mod:`stillguard.protector`) was trained once, offline, to minimise a method's loss
(``rollout-freeze`` by default) against one or several targets; here its output is the loop's
**start point**, inside the budget by construction. With ``refine=0`` the loop takes no step:
protection is the network's perturbation, rounded to 8 bits and clipped into the budget on the
saved PNG like every other method's. With ``refine=K`` the loop continues with K PGD steps of the
protector's own method (its loss, options and the loop's schedule) from there.

Needs: nothing with ``refine=0`` (not even a target model when ``protector`` is given); with
``refine > 0`` what the protector's method needs. Works in the ``rgb`` space only (the network's
output is an RGB perturbation).

Choices (none comes from a paper):
    * ``protector=None`` takes the protector shipped for exactly this run's targets (the toy
      CogVideoX model alone, or the toy pair as an ensemble); anything else needs a file, and the
      message says how to train one;
    * a protector used against other targets than it was trained for, or at another budget, is
      allowed (that is a transfer; measure it with ``verify``) and logged as a warning;
    * the method object keeps the loaded network (resolved in :meth:`Amortized.prepare`, read-only
      afterwards), so one object serves every image of a batch; loaded files are cached by path,
      size and modification time.
"""

from __future__ import annotations

import functools
import logging
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..errors import InputError
from ..protector import Protector, load_protector, shipped_for
from ..registry import METHODS
from .base import Method, State

log = logging.getLogger(__name__)


@functools.lru_cache(maxsize=8)
def _cached(path: str, size: int, mtime_ns: int, source: str) -> Protector:
    return load_protector(path, source=source)


def _load(path: Path, source: str) -> Protector:
    if not path.is_file():
        return load_protector(path)  # raises the one-line "no such file"
    st = path.stat()
    return _cached(str(path.resolve()), st.st_size, st.st_mtime_ns, source)


@METHODS.register("amortized")
@dataclass
class Amortized(Method):
    """One forward pass of a trained protector network, plus ``refine`` PGD steps (see above).

    Attributes:
        protector: path of a protector file (``stillguard train-protector``); ``None``: the one
            shipped for the run's targets.
        refine: PGD steps of the protector's method after the network's pass (0: none).
    """

    protector: str | None = None
    refine: int = 0
    _net: Protector | None = field(default=None, init=False, repr=False, compare=False)
    _inner: Method | None = field(default=None, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if isinstance(self.refine, bool) or not isinstance(self.refine, int) or self.refine < 0:
            raise InputError(
                f"refine must be a whole number of PGD steps >= 0, got {self.refine!r}"
            )
        if self.protector is not None and not isinstance(self.protector, (str, Path)):
            raise InputError(f"protector must be a file path, got {self.protector!r}")

    @property
    def optimizes(self) -> bool:  # type: ignore[override]
        """Only a refined run takes steps (and so needs a target model)."""
        return self.refine > 0

    @property
    def loop_overrides(self) -> dict[str, Any]:  # type: ignore[override]
        """The loop runs ``refine`` steps from the network's perturbation (never a random start)."""
        return {"steps": self.refine, "random_start": False}

    def batchable(self) -> bool:
        if self.refine == 0:
            return True
        return self._inner is not None and self._inner.batchable()

    # ------------------------------------------------------------------ the run's targets
    def prepare(self, adapters: Any) -> None:
        """Load the protector (the given file, or the one shipped for ``adapters``) and, for
        ``refine > 0``, build its method and check it against every target."""
        pairs = [(a.registry_name, a.model_id) for a in adapters if a is not None]
        if self.protector is not None:
            net = _load(Path(self.protector).expanduser(), str(self.protector))
        elif pairs:
            path = shipped_for(pairs)
            net = _load(path, f"shipped:{path.name}")
        else:
            raise InputError(
                "method 'amortized' without a target model needs a protector file: pass "
                "protector=FILE (--protector FILE)"
            )
        trained = sorted(set(net.targets()))
        if pairs and trained and trained != sorted(set(pairs)):
            log.warning(
                "protector %s was trained against %s and is used against %s: its effect there is "
                "a transfer (measure it with verify)",
                net.source, _names(trained), _names(pairs),
            )  # fmt: skip
        real_run = not pairs or all(a.is_real for a in adapters if a is not None)
        if real_run and trained and all(m in ("tiny", "toy", "toy-wan") for _, m in trained):
            log.warning(
                "protector %s was trained against demo models only (%s): it does not protect "
                "against real image-to-video models", net.source, _names(trained),
            )  # fmt: skip
        self._net, self._inner = net, None
        if self.refine > 0:
            name = str(net.training.get("method", ""))
            if not name or name == self.registry_name:
                raise InputError(
                    f"protector {net.source} records no method to refine with; use refine=0"
                )
            self._inner = METHODS.build(name, **dict(net.training.get("method_options") or {}))
            for a in adapters:
                self._inner.check(a)

    # ------------------------------------------------------------------ the loop's hooks
    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        """The refine method's setup (nothing without refinement)."""
        if self._inner is None:
            return State()
        return State(inner=self._inner.setup(adapter, x_clean, generator))

    def start(
        self, space: Any, x: Tensor, generator: torch.Generator, random_start: bool
    ) -> Tensor:
        """The network's perturbation of ``x`` at the space's budget (one forward pass).

        Shape:
            ``x`` ``(B,3,H,W)`` -> the rgb space's parameter ``(B,3,H,W)``.
        """
        net = self._ready()
        if getattr(space, "registry_name", "") != "rgb":
            raise InputError(
                f"method 'amortized' computes an RGB perturbation: use the rgb space, not "
                f"{getattr(space, 'registry_name', space)!r}"
            )
        if abs(space.eps - net.eps) > 1e-9:
            log.warning(
                "protector %s was trained at eps %.1f/255 and runs at %.1f/255: its output is "
                "scaled to the budget", net.source, net.eps * 255, space.eps * 255,
            )  # fmt: skip
        with torch.no_grad():
            delta = net.perturb(x, space.eps)
        return space.project(x, delta)

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        """The protector's method's loss (refinement steps only)."""
        if self._inner is None:
            raise InputError("method 'amortized' takes loss steps only with refine > 0")
        return self._inner.loss(adapter, x, generator, state.inner)

    def describe(self) -> dict[str, Any]:
        out = super().describe()
        if self._net is not None:
            out["network"] = self._net.describe()
        if self._inner is not None:
            out["refine_method"] = self._inner.describe()
        return out

    def _ready(self) -> Protector:
        if self._net is None:
            raise InputError(
                "method 'amortized' was not prepared with its targets: run it through protect()"
            )
        return self._net


def _names(pairs: Any) -> str:
    return "+".join(f"{t}:{m}" for t, m in pairs)
