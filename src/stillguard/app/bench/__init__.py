"""``stillguard bench``: the papers' tables in one command, on your photos, methods and models.

Modules: :mod:`.spec` (what to run, parsed and checked), :mod:`.photos` (a folder or a builtin set),
:mod:`.configs` (each target x method as ``protect``'s run configuration, sized by the planner),
:mod:`.cell` (one photo x method x target: protect, attack, generate, measure), :mod:`.run`
(the loop, resume, the run record), :mod:`.table` (aggregation and the success rule),
:mod:`.outputs` (table.md/.csv/.json, the HTML report).
"""

from __future__ import annotations

from .photos import Photo, load_photos
from .run import run_bench
from .spec import BenchSpec, MethodSpec, parse_attacks, parse_methods, parse_seeds, parse_targets

__all__ = ["BenchSpec", "MethodSpec", "Photo", "load_photos", "parse_attacks", "parse_methods",
           "parse_seeds", "parse_targets", "run_bench"]  # fmt: skip
