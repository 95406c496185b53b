"""Shared fixtures: tiny random adapters, built once per test session.

Use ``tiny_cog`` / ``tiny_svd`` directly, or ``tiny_adapter`` (a cached factory) with a registry
name. The adapters are shared: do not change their settings or weights in a test; build your own
with ``ADAPTERS.get(name).tiny()`` for that (it takes well under a second).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
import torch

from stillguard.adapters import ADAPTERS, Adapter

_CACHE: dict[str, Adapter] = {}


def tiny_adapter(name: str) -> Adapter:
    """The session's tiny adapter for a registry name (seed 0, CPU), built on first use."""
    if name not in _CACHE:
        _CACHE[name] = ADAPTERS.get(name).tiny(seed=0, device="cpu")
    return _CACHE[name]


@pytest.fixture(scope="session", name="tiny_adapter")
def tiny_adapter_fixture() -> Callable[[str], Adapter]:
    return tiny_adapter


@pytest.fixture(scope="session")
def tiny_cog() -> Adapter:
    return tiny_adapter("cogvideox-i2v")


@pytest.fixture(scope="session")
def tiny_svd() -> Adapter:
    return tiny_adapter("svd")


@pytest.fixture(scope="session")
def ray_runtime():
    """A local Ray runtime with 2 CPUs (127.0.0.1, no dashboard), shared by the session's Ray
    tests and shut down at its end; its GCS address. Skips when Ray is not installed."""
    import logging
    import os

    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")
    ray = pytest.importorskip("ray", reason="Ray is not installed: pip install -e '.[dev]'")
    ray.init(
        address="local",
        num_cpus=2,
        include_dashboard=False,
        log_to_driver=False,
        logging_level=logging.WARNING,
        object_store_memory=100 * 2**20,
    )
    assert ray.get_runtime_context().gcs_address.startswith("127.0.0.1:")
    yield ray.get_runtime_context().gcs_address
    ray.shutdown()


@pytest.fixture
def image() -> torch.Tensor:
    """A smooth-ish random RGB image ``(1, 3, 80, 72)`` in [0, 1] (not the working size on purpose)."""
    g = torch.Generator().manual_seed(1234)
    low = torch.rand(1, 3, 10, 9, generator=g)
    return torch.nn.functional.interpolate(low, size=(80, 72), mode="bilinear").clamp(0, 1)


def pytest_terminal_summary(terminalreporter, exitstatus, config) -> None:  # noqa: ARG001
    """Say loudly when the web page's browser tests did not run (they must not pass silently)."""
    skipped = [
        r
        for r in terminalreporter.stats.get("skipped", [])
        if "browser" in getattr(r, "keywords", {}) or "test_web.py" in getattr(r, "nodeid", "")
    ]
    if not skipped:
        return
    reason = skipped[0].longrepr[-1] if isinstance(skipped[0].longrepr, tuple) else ""
    reason = str(reason).removeprefix("Skipped: ")
    terminalreporter.write_sep("!", "WEB/BROWSER TESTS NOT RUN", red=True, bold=True)
    terminalreporter.write_line(
        f"{len(skipped)} web test(s) were skipped: {reason}", red=True, bold=True
    )
    terminalreporter.write_line(
        "Enable them: apt-get install -y chromium && pip install -e '.[dev]' (./run.sh does the "
        "pip part); CI sets STILLGUARD_REQUIRE_BROWSER=1 so a missing browser fails there.",
        red=True,
    )
