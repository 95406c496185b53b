"""``protect``'s amortized options: ``--protector`` and ``--refine`` as options of the amortized
method, and the protector file checked before any work."""

from __future__ import annotations

from pathlib import Path


def amortized_flags(
    method: str | None, protector: Path | None, refine: int | None, sets: list[str]
) -> tuple[str, list[str]]:
    """``--protector`` / ``--refine`` as options of the amortized method (which they imply)."""
    import json

    from ..errors import InputError

    if method not in (None, "amortized"):
        raise InputError(f"--protector and --refine go with --method amortized, not {method!r}")
    extra = [f"method.protector={json.dumps(str(protector))}"] if protector is not None else []
    extra += [f"method.refine={int(refine)}"] if refine is not None else []
    return "amortized", [*sets, *extra]


def check_protector(path: str | None, targets: list[tuple[str, str]]) -> None:
    """Load the protector file (or find the shipped one for ``targets``) before any work: a
    missing, broken or foreign file is one error line."""
    from ..protector import load_protector, shipped_for

    if path is not None:
        load_protector(Path(path).expanduser())
    else:
        shipped_for(targets)
