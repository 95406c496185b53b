"""Each (target, method) pair of a bench as a validated run configuration, sized by the planner.

A method row is ``protect``'s configuration: the row's preset (default ``default``), then its
method, target and model, ``steps``/``eps``, device and dtype, then its method options as
``--set method.KEY=VALUE``; so a bench protects exactly as ``stillguard protect`` would.
With ``gpu_memory`` the planner picks the memory-saving rungs per pair (:mod:`stillguard.app.fit`).
"""

from __future__ import annotations

from typing import Any

from ..config import RunConfig, build_config
from .spec import BenchSpec, MethodSpec


def _literal(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    return str(value)


def run_config(spec: BenchSpec, target: tuple[str, str], method: MethodSpec) -> RunConfig:
    """The configuration of one pair (raises InputError on a bad option, before any work)."""
    sets = [f"method.{k}={_literal(v)}" for k, v in method.options]
    cfg = build_config(method.preset, sets=sets, method=method.name, target=target[0],
                       model=target[1], steps=method.steps, eps=method.eps, device=spec.device,
                       dtype=spec.dtype)  # fmt: skip
    if spec.gpu_memory is not None:
        from ..fit import fit_config

        cfg, _ = fit_config(cfg, spec.gpu_memory)
    return cfg


def all_configs(spec: BenchSpec) -> dict[tuple[str, str], RunConfig]:
    """``{(target label, method label): RunConfig}`` for every pair."""
    return {
        (f"{t[0]}:{t[1]}", m.label): run_config(spec, t, m)
        for t in spec.targets
        for m in spec.methods
    }
