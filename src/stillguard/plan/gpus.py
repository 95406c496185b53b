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


def parse_memory(text: str | int | float) -> int:
    """``"24GiB"``, ``"80GB"``, ``"24G"`` (binary), ``"1.5TiB"`` or a byte count -> bytes.

    ``"auto"`` is the free memory of CUDA device 0 (needs a GPU).

    Raises:
        InputError: unreadable size, or ``auto`` without CUDA.
    """
    if isinstance(text, (int, float)):
        value = int(text)
    elif text.strip().lower() == "auto":
        import torch

        if not torch.cuda.is_available():
            raise InputError(
                "--gpu-memory auto reads the free memory of a CUDA GPU, and none is available: "
                "give a size such as 24GiB"
            )
        return int(torch.cuda.mem_get_info()[0])
    else:
        m = re.fullmatch(r"\s*([0-9]*\.?[0-9]+)\s*([A-Za-z]*)\s*", text)
        unit = m.group(2).upper() if m else None
        if m is None or unit not in _UNITS:
            raise InputError(
                f"cannot read the memory size {text!r}: write e.g. 24GiB, 80GB, 24G or a byte count"
            )
        value = int(float(m.group(1)) * _UNITS[unit])
    if value <= 0:
        raise InputError(f"memory size must be positive, got {text!r}")
    return value


def need_bytes(peak_bytes: int) -> int:
    """Device memory to ask for a tracked peak: ``peak * (1 + FRAGMENTATION) + CONTEXT_BYTES``."""
    return int(peak_bytes * (1 + FRAGMENTATION)) + CONTEXT_BYTES


def human_bytes(n: int | float) -> str:
    """``12.3 GiB``-style text (binary units)."""
    n = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if abs(n) < 1024 or unit == "TiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.2f} {unit}"
        n /= 1024
    return f"{n:.2f} TiB"  # pragma: no cover
