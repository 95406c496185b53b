"""FLOPs of one protection step with ``torch.utils.flop_counter.FlopCounterMode``.

The counter maps ATen ops to closed-form FLOP counts from shapes alone (so it works on fake
tensors): matrix products (``mm``, ``addmm``, ``bmm``, ``baddbmm``: ``2·m·n·k``), convolutions and
their backward, and the fused attention kernels (``4·b·h·s_q·s_k·d`` forward, about 2.5x that
backward). Element-wise ops, norms, softmax are not counted (they are memory-bound and a few
percent of a transformer's arithmetic); the estimate of time uses these counted FLOPs only.

PyTorch's table lacks the CPU flash-attention kernels that ``scaled_dot_product_attention`` picks
on CPU tensors; :func:`counter` adds them with the same formulas, so a CPU measurement and a
fake-CUDA plan count attention alike.

Only the ``Global`` total is kept: :func:`counter` replaces the counter's module tracker (which
files counts under every enclosing module) with :class:`_GlobalOnly`. The stock tracker registers
gradient hooks on the inputs and outputs of every module call and keeps their handles until the
counter exits; during backward that includes each gradient-checkpoint recomputation, whose graph,
and with it every recomputed activation, then stays alive to the end of the step. Memory is
measured under the same counter, so the planned peak of a checkpointed step came out as if no block
were ever freed (tiny DynamiCrafter at 256x256: 361 MiB with the tracker, 179 MiB without; the
step without checkpointing: 325 MiB).
"""

from __future__ import annotations

from typing import Any

import torch
from torch.utils import flop_counter as fc

aten = torch.ops.aten


def _cpu_flash(query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kw: Any) -> int:
    return fc.sdpa_flop_count(query_shape, key_shape, value_shape)


def _cpu_flash_backward(
    grad_out_shape: Any, query_shape: Any, key_shape: Any, value_shape: Any, *args: Any, **kw: Any
) -> int:
    return fc.sdpa_backward_flop_count(grad_out_shape, query_shape, key_shape, value_shape)


def _extra_formulas() -> dict[Any, Any]:
    extra: dict[Any, Any] = {}
    for name, fn in (
        ("_scaled_dot_product_flash_attention_for_cpu", _cpu_flash),
        ("_scaled_dot_product_flash_attention_for_cpu_backward", _cpu_flash_backward),
    ):
        op = getattr(aten, name, None)
        if op is not None and op not in fc.flop_registry:
            extra[op] = fn
    return extra


class _GlobalOnly:
    """Stand-in for ``FlopCounterMode.mod_tracker``: every count goes to ``Global``, no hooks."""

    parents = frozenset({"Global"})
    is_bw = False

    def __enter__(self) -> _GlobalOnly:
        return self

    def __exit__(self, *args: Any) -> None:
        return None


def counter() -> fc.FlopCounterMode:
    """A silent ``FlopCounterMode`` that also counts the CPU flash-attention kernels and keeps
    only the ``Global`` total (no module tracker: see the module docstring)."""
    mode = fc.FlopCounterMode(display=False, custom_mapping=_extra_formulas())
    mode.mod_tracker = _GlobalOnly()  # type: ignore[assignment]
    return mode


def by_operator(mode: fc.FlopCounterMode) -> dict[str, int]:
    """FLOPs per ATen operator name over the whole counted region (``Global`` in the counter)."""
    counts = mode.get_flop_counts().get("Global", {})
    return {
        str(op).split(".")[-1] if "." in str(op) else str(op): int(n) for op, n in counts.items()
    }
