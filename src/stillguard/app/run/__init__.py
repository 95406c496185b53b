"""One batch path for every executor: a photo is collected, named (or found done), handed to the
unit of work (read once, protect, save atomically) and recorded by the driver in the manifest.

Modules: :mod:`.inputs` (collect), :mod:`.names` (output names, the name-taken and resume rules),
:mod:`.unit` (the unit of work), :mod:`.manifest` (its one writer is :mod:`.driver`),
:mod:`.groups` (``--batch-size``: inputs of one size together), the executors :mod:`.local` and
:mod:`.cluster` (Ray; its plumbing in :mod:`.ray_runtime`, its worker in :mod:`.ray_worker`),
:mod:`.results` (what a run reports).
"""

from .cluster import run_ray_batch
from .inputs import collect
from .local import run_batch
from .manifest import MANIFEST, read_manifest
from .names import BatchItem
from .results import BatchEvent, BatchResult, ItemResult
from .unit import protect_one, run_hash

__all__ = [
    "MANIFEST",
    "BatchEvent",
    "BatchItem",
    "BatchResult",
    "ItemResult",
    "collect",
    "protect_one",
    "read_manifest",
    "run_batch",
    "run_hash",
    "run_ray_batch",
]
