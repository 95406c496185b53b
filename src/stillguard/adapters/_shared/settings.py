"""A family's generation settings as one checked dataclass (``ltx2-i2v``, ``cosmos2-i2v``), and
the check of option names several families share (:func:`refuse_unknown`).

A subclass lists its settings as fields with the pipeline's ``__call__`` defaults and names its
target in ``TARGET``; :meth:`FamilySettings.from_dict` takes the fields found in a dict (a folder's
``stillguard.json`` merged with options: other keys such as ``"adapter"`` or ``"_source"`` are
left alone, ``None`` means "the default") and runs :meth:`FamilySettings.check`;
:meth:`FamilySettings.check_names` refuses option names that are not fields, with close matches;
:meth:`FamilySettings.to_dict` is what ``save_pretrained`` writes.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterable, Sequence
from typing import Any, ClassVar, TypeVar

from ...errors import InputError
from ...registry import close_matches

S = TypeVar("S", bound="FamilySettings")


@dataclasses.dataclass
class FamilySettings:
    """Base of a family's settings dataclass (see the module docstring)."""

    TARGET: ClassVar[str] = "target"

    @classmethod
    def from_dict(cls: type[S], values: dict[str, Any]) -> S:
        names = {f.name for f in dataclasses.fields(cls)}
        settings = cls(**{k: v for k, v in values.items() if k in names and v is not None})
        settings.check()
        return settings

    def check(self) -> None:
        """Validate and normalise the values in place (raise :class:`InputError`)."""

    @classmethod
    def check_names(cls, options: dict[str, Any]) -> None:
        """Refuse option names that are not settings."""
        refuse_unknown(cls.TARGET, options, [f.name for f in dataclasses.fields(cls)])

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


def refuse_unknown(target: str, options: Iterable[str], allowed: Sequence[str]) -> None:
    """Raise :class:`InputError` for the option names of ``target`` not in ``allowed`` (the first
    one's close matches in the message): the check the flow loaders, the Wan-VAE targets and
    the settings dataclasses share."""
    unknown = sorted(set(options) - set(allowed))
    if unknown:
        raise InputError(
            f"unknown {target} option(s) {unknown}: {close_matches(unknown[0], list(allowed))}"
        )


def check_video_size(
    frames: Iterable[int], temporal: int, height: int, width: int, spatial: int | None
) -> None:
    """Raise :class:`InputError` unless every count in ``frames`` is ``1 + k·temporal`` (the
    causal video VAEs' first frame plus whole chunks) and, when ``spatial`` is given, ``height``
    and ``width`` are multiples of it (VAE factor × patch, or the pipeline's own check)."""
    for n in frames:
        if (n - 1) % temporal:
            raise InputError(f"num_frames={n} must be 1 + a multiple of {temporal}")
    if spatial is not None and (height % spatial or width % spatial):
        raise InputError(f"height and width must be multiples of {spatial}, got {height}x{width}")


def one_of(target: str, name: str, value: Any, allowed: tuple[str, ...]) -> str:
    """``value`` if it is one of ``allowed``, else an :class:`InputError` naming the option."""
    if value not in allowed:
        raise InputError(f"{target} {name} must be one of {', '.join(allowed)}; got {value!r}")
    return str(value)
