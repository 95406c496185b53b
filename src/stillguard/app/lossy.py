"""Re-saving a protected photo lossily (JPEG, WebP, HEIC, AVIF): what it costs, said with numbers.

stillguard writes PNG only, so the budget (every pixel within eps of the original) holds on the
file it writes. A photo re-saved as JPEG afterwards (a phone's gallery, a messenger, a site)
loses part of the perturbation: the budget no longer holds and the effect is weakened, since lossy
compression is one of the purifications an attacker may apply on purpose. stillguard says so
where a user meets it:

* ``protect`` of a lossy input (where re-saving lossily is likely): one ``note:`` line per run,
  and ``lossy_input`` in each such sidecar;
* ``protect -o x.jpg``: the refusal says what a JPEG would cost;
* ``verify`` of a protected file that is itself lossy: a ``warning:`` line;
* the web page: a note under the download.

The numbers are the toy model's, from ``docs/efficacy.md`` (8 held-out images x 3 seeds, 8/255,
100 PGD steps; a test checks they are still there): rollout-freeze's mean motion ratio (protected
video's motion / clean's; 1 = no effect) was 0.864 on the saved PNG and 0.875 after JPEG quality
75; with EOT through jpeg:75, resize and blur (the eot ablation) 0.863 after JPEG 75. Nothing is
measured on a real model yet. The presets that optimise through JPEG (:func:`jpeg_presets`) are
read from the shipped presets, not listed by hand.
"""

from __future__ import annotations

from typing import Any

from ..formats import format_of_name, is_lossy
from .presets import list_presets, read_preset

#: ``docs/efficacy.md`` row prefix -> the mean motion ratio quoted from it
MEASURED = {
    "| rollout-freeze | identity |": "0.864",
    "| rollout-freeze | jpeg:75 |": "0.875",
    "| EOT on (jpeg:75, resize:0.75, blur:1.0) |": "0.863",
}


def jpeg_presets() -> list[str]:
    """Shipped presets whose EOT includes a JPEG transform (they optimise through JPEG)."""
    out = []
    for name in list_presets():
        eot = read_preset(name)[0].get("protect", {}).get("eot", [])
        if any(str(t).split(":")[0] == "jpeg" for t in eot):
            out.append(name)
    return out


def resave_note(fmt: str | None = "JPEG") -> str:
    """One line: what re-saving as ``fmt`` costs (measured on the toy), and what to do instead."""
    m = list(MEASURED.values())
    presets = " or ".join(f"--preset {p}" for p in jpeg_presets()) or "an EOT preset"
    return (
        f"re-saving a protected photo as {fmt or 'JPEG'} (as phones, messengers and most sites "
        "do) weakens its protection: the budget no longer holds on the re-saved file, and on the "
        f"toy model JPEG 75 moved rollout-freeze's mean motion ratio from {m[0]} to {m[1]} (1 = no "
        f"effect; docs/efficacy.md; not measured on real models). Share the PNG, or protect with "
        f"{presets}, which optimises through jpeg:75 (EOT; {m[2]} after JPEG 75 in the same "
        "study), and check with stillguard verify --transforms identity,jpeg:75"
    )


def lossy_input_note(fmt: str | None) -> str | None:
    """The sidecar's ``lossy_input`` entry for an input of format ``fmt`` (None: not lossy)."""
    if not is_lossy(fmt):
        return None
    return f"the input was {fmt}; " + resave_note(fmt)


def lossy_format(items: list[Any], single_format: str | None = None) -> str | None:
    """The lossy format (e.g. ``"JPEG"``) of the first protected input in one, else None.

    ``single_format``: the decoded format of a single input (its content, not its name); a batch
    is judged by file names (``a.jpg`` -> JPEG), which is what a user sees.
    """
    for r in items:
        fmt = single_format or format_of_name(r.input)
        if r.status in ("ok", "skipped") and is_lossy(fmt):
            return "JPEG" if fmt == "MPO" else fmt  # a camera JPEG with a preview
    return None
