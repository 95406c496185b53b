"""What a batch reports: one result per input (also its manifest line), progress events, totals."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any


@dataclass
class ItemResult:
    """What happened to one input (also one manifest line)."""

    input: str
    status: str
    output: str | None = None
    sidecar: str | None = None
    input_sha256: str | None = None
    output_sha256: str | None = None
    config_hash: str | None = None
    error: str | None = None
    seconds: float = 0.0
    real_model: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchEvent:
    """Progress of a batch: ``kind`` is ``"start"``, ``"step"`` or ``"done"`` (with ``result``).

    Every input gets ``start`` (when it is read), its ``step`` events, then ``done``. With
    ``batch_size > 1`` inputs of one size step together: each gets every step event of its group,
    whose ``loss`` is the group's mean, and several inputs may be started before one is done.
    """

    kind: str
    index: int
    total: int
    input: Path
    step: int = 0
    steps: int = 0
    loss: float | None = None
    result: ItemResult | None = None


@dataclass
class BatchResult:
    """All results of a batch run, in input order."""

    items: list[ItemResult] = field(default_factory=list)
    manifest: Path | None = None
    config_hash: str = ""
    #: files inside the input folders that are not image names (listed, not protected)
    ignored: list[str] = field(default_factory=list)
    #: links inside the input folders that were not followed: ``{"path", "reason"}``
    #: (a link to outside the folder, a loop of links; :mod:`.inputs`)
    skipped_links: list[dict[str, str]] = field(default_factory=list)

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.items)

    #: True when no input could even be read (then nothing was written)
    nothing_read: bool = False

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, 2 when no input could be read, else 1."""
        if self.nothing_read and self.items:
            return 2
        return 1 if self.count("failed") else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.count("ok"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "manifest": str(self.manifest) if self.manifest else None,
            "config_hash": self.config_hash,
            "ignored": list(self.ignored),
            "skipped_links": list(self.skipped_links),
            "items": [r.to_dict() for r in self.items],
        }
