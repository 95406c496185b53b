"""Installed package versions, recorded in sidecars, reports and `stillguard env`."""

from __future__ import annotations

from collections.abc import Iterable
from importlib import metadata

#: what every sidecar and report records
CORE = ("stillguard", "torch", "diffusers")


def package_versions(
    packages: Iterable[str] = CORE, *, skip_missing: bool = False
) -> dict[str, str]:
    """``{package: version}``; a missing package is ``"unknown"`` (or left out with ``skip_missing``)."""
    out: dict[str, str] = {}
    for pkg in packages:
        try:
            out[pkg] = metadata.version(pkg)
        except metadata.PackageNotFoundError:
            if not skip_missing:
                out[pkg] = "unknown"
    return out
