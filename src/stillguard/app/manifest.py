"""Deprecated: the manifest is :mod:`stillguard.app.run.manifest` (kept one release)."""

from ._moved import forward
from .run import manifest

__getattr__ = forward(
    __name__,
    {name: manifest for name in
     ("MANIFEST", "Manifest", "read_manifest", "relative", "remove_stale_temporaries")},
)  # fmt: skip
