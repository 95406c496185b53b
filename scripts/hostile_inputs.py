"""Hostile inputs against the real CLI: prints the tables of ``docs/hostile-inputs.md``.

    .venv/bin/python scripts/hostile_inputs.py > table.md

The rows live in ``hostile_inputs_round12.py`` (the first rounds and issue 12) and
``hostile_inputs_round3.py`` (issue 26); this entry runs both and exits 1 if any row failed its
check.
"""

from __future__ import annotations

from hostile_inputs_round3 import run_round3
from hostile_inputs_round12 import run_round12


def main() -> int:
    bad = run_round12()
    bad += run_round3()
    return 1 if bad else 0


if __name__ == "__main__":
    raise SystemExit(main())
