"""Know before running: memory, FLOPs and time of a protection run, and the memory ladder.

``plan(target, ...)`` sizes one protection step of a target built from its configuration with fake
tensors (no weights, no GPU); ``choose_rungs(target, gpu_memory=...)`` picks memory-saving rungs
in a fixed order until the plan fits. See :mod:`.planner`, :mod:`.rungs`, :mod:`.ladder`.
"""

from __future__ import annotations

from .gpus import GPUS, get_gpu, parse_memory
from .ladder import LadderError, choose_rungs
from .planner import Plan, plan
from .rungs import LADDER

__all__ = [
    "GPUS",
    "LADDER",
    "LadderError",
    "Plan",
    "choose_rungs",
    "get_gpu",
    "parse_memory",
    "plan",
]
