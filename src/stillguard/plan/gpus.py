"""GPU classes for the planner: memory and an ASSUMED sustained bf16 throughput.

Every number here is either a datasheet figure (cited) or an assumption (marked). Times derived
from them are estimates, not measurements: a protection step mixes large matrix products (near
peak) with attention, norms and element-wise ops (memory-bound), so a run reaches a fraction of
the dense peak. ``SUSTAINED_FRACTION`` is that fraction, ASSUMED at 0.4 for every class (a typical
model-FLOP utilisation of transformer training steps in bf16; no I2V protection has published
one). ``benchmarks/gpu_calibrate.py`` measures the real ratio on a GPU you have.

Memory: ``memory_bytes`` is the nominal capacity (GB = 10**9 bytes as marketed; the usable part
that ``torch.cuda.mem_get_info`` reports is a little lower). ``fits`` in the planner keeps a margin
for what the tracker cannot see (CUDA context, cuBLAS/cuDNN workspaces, allocator rounding and
fragmentation): ``need = peak * (1 + FRAGMENTATION) + CONTEXT_BYTES``, both ASSUMED.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from ..bounds import BOUNDS
from ..errors import InputError
from ..registry import close_matches

#: ASSUMED: fraction of the dense bf16 peak a protection step sustains (see the module docstring)
SUSTAINED_FRACTION = 0.4
#: ASSUMED: allocator rounding/fragmentation on top of the tracked peak
FRAGMENTATION = 0.10
#: ASSUMED: CUDA context + library workspaces, in bytes
CONTEXT_BYTES = 1 << 30

GB = 10**9
GIB = 1 << 30


@dataclass(frozen=True)
class GPU:
    """A GPU class. ``peak_tflops``: dense bf16 tensor-core peak (datasheet, no sparsity)."""

    name: str
    memory_bytes: int
    peak_tflops: float
    source: str

    @property
    def sustained_tflops(self) -> float:
        """ASSUMED sustained bf16 TFLOP/s: ``peak_tflops * SUSTAINED_FRACTION``."""
        return self.peak_tflops * SUSTAINED_FRACTION


GPUS: dict[str, GPU] = {
    g.name: g
    for g in (
        # NVIDIA H100 Tensor Core GPU datasheet: SXM BF16 1,979 TFLOPS "with sparsity" -> 989 dense
        GPU(
            "H100", 80 * GB, 989.0, "NVIDIA H100 datasheet (SXM, BF16 dense = half the sparse 1979)"
        ),
        # NVIDIA H200 datasheet: 141 GB HBM3e, BF16 1,979 TFLOPS with sparsity (same SM as H100)
        GPU(
            "H200",
            141 * GB,
            989.0,
            "NVIDIA H200 datasheet (SXM, BF16 dense = half the sparse 1979)",
        ),
        # NVIDIA A100 datasheet: BF16 312 TFLOPS dense (624 with sparsity); 80 GB and 40 GB parts
        GPU("A100", 80 * GB, 312.0, "NVIDIA A100 datasheet (BF16 dense 312)"),
        GPU("A100-40GB", 40 * GB, 312.0, "NVIDIA A100 datasheet (BF16 dense 312)"),
        # NVIDIA L40S datasheet: 48 GB GDDR6, BF16 362.05 TFLOPS dense (733 with sparsity)
        GPU("L40S", 48 * GB, 362.0, "NVIDIA L40S datasheet (BF16 dense 362.05)"),
        # NVIDIA Ada whitepaper, RTX 4090: FP16/BF16 tensor with FP32 accumulate 165.2 dense
        # (PyTorch's bf16 matmuls accumulate in FP32); 24 GB GDDR6X
        GPU(
            "RTX4090", 24 * GB, 165.2, "NVIDIA Ada Lovelace whitepaper (RTX 4090, FP32 accumulate)"
        ),
        # NVIDIA L4 datasheet: 24 GB, BF16 242 TFLOPS with sparsity -> 121 dense
        GPU("L4", 24 * GB, 121.0, "NVIDIA L4 datasheet (BF16 dense = half the sparse 242)"),
    )
}


def get_gpu(name: str) -> GPU:
    """A GPU class by name (case and ``-``/space insensitive: ``h100``, ``RTX 4090``)."""
    key = re.sub(r"[\s_]", "", name).upper()
    for gname, gpu in GPUS.items():
        if key == gname.upper().replace(" ", ""):
            return gpu
    raise InputError(f"unknown GPU class {name!r}: {close_matches(name, list(GPUS))}")


_UNITS = {"": 1, "B": 1, "KB": 10**3, "MB": 10**6, "GB": GB, "TB": 10**12,
          "KIB": 1 << 10, "MIB": 1 << 20, "GIB": GIB, "TIB": 1 << 40, "K": 1 << 10,
          "M": 1 << 20, "G": GIB, "T": 1 << 40}  # fmt: skip
_DECIMAL = frozenset({"KB", "MB", "GB", "TB"})


class MemorySize(int):
    """A number of bytes that remembers the unit family the user wrote it in.

    ``decimal`` is True for ``kB``/``MB``/``GB``/``TB`` (powers of 1000, as GPUs are sold), False
    for ``KiB``/``MiB``/``GiB``/``TiB`` and the short ``G``/``T`` (powers of 1024, as PyTorch and
    ``nvidia-smi`` count), a bare byte count and ``auto``. Every message about a run planned for
    this size uses the same family (:func:`human_bytes` with ``like=``), so the numbers can be
    compared as written.
    """

    decimal: bool
    text: str

    def __new__(cls, value: int, decimal: bool = False, text: str = "") -> MemorySize:
        obj = super().__new__(cls, int(value))
        obj.decimal, obj.text = bool(decimal), text or str(int(value))
        return obj

    def __reduce__(self) -> tuple[Any, ...]:
        return (MemorySize, (int(self), self.decimal, self.text))


def parse_memory(text: str | int | float) -> MemorySize:
    """``"24GiB"``, ``"80GB"``, ``"24G"`` (binary), ``"1.5TiB"`` or a byte count -> bytes.

    ``"auto"`` is the free memory of CUDA device 0 (needs a GPU). The result is an ``int`` that
    also remembers the unit family (:class:`MemorySize`). No range is checked here (the planner's
    API takes any size); a front checks what a user typed with :func:`check_memory`.

    Raises:
        InputError: unreadable size, or ``auto`` without CUDA.
    """
    if isinstance(text, MemorySize):
        return text
    if isinstance(text, (int, float)):
        value, decimal = int(text), False
    elif text.strip().lower() == "auto":
        import torch

        if not torch.cuda.is_available():
            raise InputError(
                "--gpu-memory auto reads the free memory of a CUDA GPU, and none is available: "
                "give a size such as 24GiB"
            )
        return MemorySize(torch.cuda.mem_get_info()[0], False, "auto")
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
        unit = m.group(2).upper() if m else None
        if m is None or unit not in _UNITS:
            raise InputError(
                f"cannot read the memory size {text!r}: write e.g. 24GiB, 80GB, 24G or a byte count"
            )
        value, decimal = int(float(m.group(1)) * _UNITS[unit]), unit in _DECIMAL
    if value <= 0:
        raise InputError(f"memory size must be positive, got {text!r}")
    return MemorySize(value, decimal, str(text).strip())


def check_memory(text: str | int, label: str = "--gpu-memory") -> MemorySize:
    """A size a user typed, parsed and checked against ``BOUNDS["gpu_memory"]`` in their own units.

    Raises:
        InputError: unreadable, or outside the range (the line gives it in the units written).
    """
    size = parse_memory(text)
    b = BOUNDS["gpu_memory"]
    if not b.low <= size <= b.high:
        lo, hi = human_bytes(b.low, like=size), human_bytes(b.high, like=size)
        raise InputError(f"{label} {size.text} is outside [{lo}, {hi}]: {b.why}")
    return size


def need_bytes(peak_bytes: int) -> int:
    """Device memory to ask for a tracked peak: ``peak * (1 + FRAGMENTATION) + CONTEXT_BYTES``."""
    return int(peak_bytes * (1 + FRAGMENTATION)) + CONTEXT_BYTES


def human_bytes(n: int | float, *, like: Any = None, unit_of: float | None = None) -> str:
    """``12.34 GiB``-style text: binary units, or decimal ones (``12.34 GB``) when ``like`` is a
    :class:`MemorySize` the user wrote in decimal units (or ``like=True``).

    ``unit_of``: pick the unit for this other number instead (to print several in one unit).
    """
    decimal = getattr(like, "decimal", like is True)
    step, units = (1000, ("B", "kB", "MB", "GB", "TB")) if decimal else (
        1024, ("B", "KiB", "MiB", "GiB", "TiB"))  # fmt: skip
    k, pick = 0, abs(float(n if unit_of is None else unit_of))
    while pick >= step and k < len(units) - 1:
        pick, k = pick / step, k + 1
    value = float(n) / step**k
    return f"{value:.0f} {units[k]}" if k == 0 else f"{value:.2f} {units[k]}"


def describe_need(need: int, peak: int, *, like: Any = None) -> str:
    """``need`` explained: the tracked peak plus the ASSUMED margins, all in one unit family.

    ``need = peak * (1 + FRAGMENTATION) + CONTEXT_BYTES`` (:func:`need_bytes`): without the
    margins, a 1 GiB need beside a 14 MiB peak reads as a contradiction.
    """

    def h(x: float) -> str:
        return human_bytes(x, like=like, unit_of=need)

    return (
        f"{h(need)} (the tracked peak {h(peak)} + {FRAGMENTATION:.0%} assumed for allocator "
        f"fragmentation + {h(CONTEXT_BYTES)} assumed for the CUDA context and libraries)"
    )
