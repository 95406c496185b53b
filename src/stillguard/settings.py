"""The loop's settings: one validated dataclass (:class:`LoopConfig`) and the budget parser.

Presets, the CLI, batches and :func:`stillguard.protect` all build a :class:`LoopConfig`, so every
setting is checked in one place, before any model is loaded.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .bounds import BOUNDS, check
from .errors import InputError
from .registry import close_matches

SCHEDULES = ("constant", "cosine", "linear")
#: the largest budget stillguard accepts (beyond it the perturbation becomes plainly visible)
MAX_EPS = 32 / 255
#: the smallest: a budget under one 8-bit level rounds to nothing on the saved PNG
MIN_EPS = 1 / 255
MAX_SEED = int(BOUNDS["seed"].high)


def parse_eps(value: Any) -> float:
    """``"8/255"``, ``"0.03"`` or a number -> eps in ``[0, 1]`` RGB units, in ``[1/255, 32/255]``.

    Raises:
        InputError: unparsable, or outside the range (under one 8-bit level it would round to
            nothing on the saved PNG; over 32/255 it becomes plainly visible).
    """
    if isinstance(value, bool):
        raise InputError(f"eps must be a number or a fraction like '8/255', got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        num, slash, den = text.partition("/")
        try:
            eps = float(num) / float(den) if slash else float(text)
        except (ValueError, ZeroDivisionError):
            raise InputError(f"eps {value!r} is not a number or a fraction like '8/255'") from None
    elif isinstance(value, (int, float)):
        eps = float(value)
    else:
        raise InputError(f"eps must be a number or a fraction like '8/255', got {value!r}")
    if not math.isfinite(eps) or not MIN_EPS - 1e-9 <= eps <= MAX_EPS + 1e-12:
        raise InputError(
            f"eps={value} is outside [1/255, 32/255]: it is an L-infinity budget in [0, 1] units, "
            "e.g. 8/255 (about 0.031); under 1/255 it rounds to nothing in an 8-bit PNG, over "
            "32/255 it becomes visible"
        )
    return eps


@dataclass(frozen=True)
class LoopConfig:
    """The nine settings of the loop, validated once on construction.

    Attributes:
        eps: RGB L-infinity budget in ``[0, 1]`` units (``"8/255"`` accepted); ``None`` keeps the
            space's own default (8/255 for every shipped space).
        steps: PGD steps (``0``: only the start point, i.e. the ``noise`` baseline).
        step_size, final_step_size: first and last step as a fraction of the space's own budget.
        schedule: ``"constant"``, ``"cosine"`` or ``"linear"`` decay between the two.
        random_start: start from a random point inside the budget.
        eot: transforms (spec strings like ``"jpeg:75"`` or objects) for Expectation over
            Transformation; empty for none.
        eot_samples: transform draws averaged per step (ignored without ``eot``).
        seed: seeds every random draw of the run, in ``[0, 2**63 - 1]``.

    ``steps``, ``eot_samples`` and ``seed`` are checked against :data:`stillguard.bounds.BOUNDS`.
    """

    eps: float | None = None
    steps: int = 100
    step_size: float = 0.25
    final_step_size: float = 0.02
    schedule: str = "cosine"
    random_start: bool = True
    eot: tuple[Any, ...] = ()
    eot_samples: int = 1
    seed: int = 0

    def __post_init__(self) -> None:
        if self.eps is not None:
            object.__setattr__(self, "eps", parse_eps(self.eps))
        for name in ("steps", "eot_samples", "seed"):
            check(name, getattr(self, name))
        for name in ("step_size", "final_step_size"):
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, (int, float)) or not 0 < v <= 1:
                raise InputError(f"{name} is a fraction of the budget in (0, 1], got {v!r}")
            object.__setattr__(self, name, float(v))
        if self.schedule not in SCHEDULES:
            raise InputError(
                f"unknown schedule {self.schedule!r}: {close_matches(str(self.schedule), list(SCHEDULES))}"
            )
        if not isinstance(self.random_start, bool):
            raise InputError(f"random_start must be true or false, got {self.random_start!r}")
        if isinstance(self.eot, (str, bytes)) or not isinstance(self.eot, Sequence):
            raise InputError(
                f"eot must be a list of transform specs like ['jpeg:75'], got {self.eot!r}"
            )
        object.__setattr__(self, "eot", tuple(self.eot))
        self.transforms()  # unknown transform names and bad values fail here

    def transforms(self) -> list[Any]:
        """The EOT transforms as objects (spec strings parsed)."""
        from .transforms import parse_transform

        return [parse_transform(t) if isinstance(t, str) else t for t in self.eot]

    def replace(self, **changes: Any) -> LoopConfig:
        """A copy with ``changes`` (validated); unknown names are refused with close matches."""
        names = [f.name for f in dataclasses.fields(self)]
        for key in changes:
            if key not in names:
                raise InputError(f"unknown loop setting {key!r}: {close_matches(key, names)}")
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able settings (transforms as their spec labels)."""
        d = dataclasses.asdict(self)
        d["eot"] = [t if isinstance(t, str) else getattr(t, "label", repr(t)) for t in self.eot]
        return d


def split_settings(
    method: str | Any, settings: dict[str, Any], options: dict[str, Any] | None
) -> tuple[dict[str, Any], dict[str, Any] | None]:
    """Keywords of :func:`protect`: loop settings, and options of a method given by name.

    Raises:
        InputError: a keyword that is neither (the message lists both kinds).
    """
    from . import plugins  # noqa: F401  (fills the registries)
    from .registry import METHODS

    loop_keys = list(LoopConfig.__dataclass_fields__)
    extra = {k: v for k, v in settings.items() if k not in loop_keys}
    if not extra:
        return settings, options
    names = [f for f, _, _ in METHODS.options(method)] if isinstance(method, str) else []
    for key in extra:
        if key not in names:
            raise InputError(
                f"unknown setting {key!r}: not a loop setting ({close_matches(key, loop_keys)})"
                + (f" nor an option of method {method!r}" if isinstance(method, str) else "")
            )
    loop = {k: v for k, v in settings.items() if k in loop_keys}
    return loop, {**(options or {}), **extra}


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
