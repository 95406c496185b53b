"""What the page offers a person: three protections named for people, the budget, the limits.

Choices (ours; the issue asks for "fast / default / strong" named for people):
    * each choice is a shipped preset plus at most a step count, built with
      :func:`stillguard.app.config.build_config`, so the page runs exactly what
      ``stillguard protect --preset NAME --steps N`` runs (the same checks and the same sidecar):
      **fast** = the ``default`` preset (Vid-Freeze) with 30 steps instead of 100, **default** =
      the ``default`` preset, **strong** = the ``strong`` preset (200 steps, EOT over JPEG, resize
      and blur, 16/255 unless the slider says otherwise); **instant** = the ``instant`` preset (one
      pass of the protector network shipped for the served model; offered only where one exists;
      the steps field then sets its refinement steps);
    * the budget slider goes from 4/255 to 16/255 (the range the papers and our presets use); the
      note next to it says in plain words what a person will see at that budget;
    * limits for a page anyone on the network may reach: 30 MB per file, 25 megapixels per photo
      (a 24 MP camera photo passes, a decompression bomb does not), 10 photos per run. The CLI
      keeps its own 50 MP default for files on one's own disk.
"""

from __future__ import annotations

from dataclasses import dataclass

DEFAULT_MAX_UPLOAD_MB = 30
DEFAULT_MAX_PIXELS = 25_000_000
DEFAULT_MAX_PHOTOS = 10
BUDGET_MIN, BUDGET_MAX = 4, 16
VERIFY_SEEDS = (0, 1)
VERIFY_TRANSFORMS = ("identity", "jpeg:75")


@dataclass(frozen=True)
class Choice:
    """A protection offered on the page: a shipped preset and an optional step count."""

    key: str
    title: str
    preset: str
    steps: int | None
    blurb: str


CHOICES: dict[str, Choice] = {
    c.key: c
    for c in (
        Choice("fast", "Fast", "default", 30, "a quick pass; weaker, to try things out"),
        Choice("default", "Default", "default", None, "the paper's setting; the usual choice"),
        Choice("strong", "Strong", "strong", None, "the longest and most visible; the strongest"),
        Choice(
            "instant",
            "Instant",
            "instant",
            None,
            "one pass of a trained network, under a second; weaker than Default",
        ),  # fmt: skip
    )
}


def offered(target: str, model: str) -> dict[str, Choice]:
    """The choices this model can run: **Instant** only where a protector was trained for it
    (shipped for the toy models; see ``docs/amortized.md``)."""
    from ..errors import InputError
    from ..protector import shipped_for

    pairs = list(zip(target.split(","), model.split(","), strict=False))
    try:
        shipped_for(pairs)
        instant = True
    except InputError:
        instant = False
    return {k: c for k, c in CHOICES.items() if c.preset != "instant" or instant}


def budget_note(budget_255: float) -> str:
    """What a person will see at an L-infinity budget of ``budget_255``/255, in plain words."""
    b = int(round(budget_255))
    if b <= 5:
        seen = "Invisible on almost any photo; the weakest protection"
    elif b <= 8:
        seen = (
            "Nearly invisible on textured photos (faces, foliage); a faint grain may show on flat "
            "areas such as sky or walls. The papers' setting"
        )
    elif b <= 12:
        seen = "A light grain is visible on flat areas when you look closely; stronger protection"
    else:
        seen = "Visible as grain and colour speckle on flat areas; the strongest protection"
    return f"**{b}/255**: each pixel changes by at most {b} of 255 levels. {seen}."


def describe_seconds(seconds: float | None) -> str:
    """``12.3`` -> ``"about 12 s"``, ``300`` -> ``"about 5 min"``; ``None``: not measured yet."""
    if seconds is None:
        return "shown after the first photo"
    if seconds < 1:
        return "under a second"
    if seconds < 90:
        return f"about {seconds:.0f} s"
    return f"about {seconds / 60:.0f} min"
