"""Live tensor-storage bytes and their peak, tracked op by op with a ``TorchDispatchMode``.

The idea (also behind ``torch.distributed._tools.mem_tracker``): every tensor an ATen op returns
lives in an ``UntypedStorage``; the tracker counts each storage once (views share it), and a weak
reference on the storage's Python object (PyTorch keeps that object alive exactly as long as the
C++ storage) subtracts the bytes when the storage dies. The peak is taken after every op, so it
is the largest sum of live storages seen at an op boundary. The same tracker runs on real tensors
(CPU measurement) and on ``FakeTensor`` s (the planner), where storages have sizes but no data.

What it does not see, by design (say so wherever the numbers are used):
    * allocator effects: CUDA's caching allocator rounds blocks up (512 B) and fragments;
    * kernel workspaces that never become tensors (cuBLAS/cuDNN scratch), the CUDA context;
    * tensors created outside the tracked region are only counted if :meth:`MemoryTracker.add`
      registers them (weights, inputs).

Categories: each storage is labelled when first seen: ``weights`` and ``inputs`` (registered
explicitly), then the current :meth:`MemoryTracker.phase` label (e.g. ``method_state`` during the
method's setup, ``activations`` during a step's forward), and ``backward`` for storages created
while autograd runs a backward pass: gradients, backward temporaries, and the activations that
gradient checkpointing recomputes (a recomputed tensor that no backward node consumes lives until
the graph is freed). Bytes are storage bytes.
"""

from __future__ import annotations

import contextlib
import weakref
from collections import Counter
from collections.abc import Iterable, Iterator
from typing import Any

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

_SCALAR_OPS = {torch.ops.aten._local_scalar_dense.default}


def _in_backward() -> bool:
    try:
        return torch._C._current_graph_task_id() != -1
    except AttributeError:  # pragma: no cover - very old torch
        return False


def _is_fake(t: Any) -> bool:
    from torch._subclasses.fake_tensor import FakeTensor

    return isinstance(t, FakeTensor)


class MemoryTracker(TorchDispatchMode):
    """Count live storage bytes (total and by category) and keep the peak.

    Args:
        fake_scalars: when an op asks for a Python number from a fake tensor (``float(loss)``,
            ``.item()``), answer ``0``/``False`` instead of failing: the planner runs the method's
            code unchanged, whose loss-term logging reads values that fake tensors do not have.
            Control flow that depends on such a value then follows the zero branch.

    Attributes:
        current: live bytes now. peak: the largest ``current`` seen.
        peak_by_category: live bytes per category at the moment of the peak.
    """

    def __init__(self, *, fake_scalars: bool = False) -> None:
        super().__init__()
        self.fake_scalars = fake_scalars
        self._live: dict[int, tuple[weakref.ref, int, str]] = {}
        self.by_category: Counter[str] = Counter()
        self.current = 0
        self.peak = 0
        self.peak_by_category: dict[str, int] = {}
        self._phase = "activations"

    # ------------------------------------------------------------------ bookkeeping
    def add(self, tensors: Iterable[Any] | Any, category: str | None = None) -> None:
        """Register tensors (any pytree of them) created outside the tracked ops."""
        for t in tree_leaves(tensors):
            if isinstance(t, torch.Tensor):
                self._add(t, category or self._label())
        self._update_peak()

    def _label(self) -> str:
        return "backward" if _in_backward() else self._phase

    def _add(self, t: torch.Tensor, category: str) -> None:
        if t.layout != torch.strided or t.is_sparse:
            return
        try:
            storage = t.untyped_storage()
        except (NotImplementedError, RuntimeError):  # e.g. tensor subclasses without storage
            return
        key = id(storage)
        if key in self._live:
            return
        size = int(storage.nbytes())
        self._live[key] = (weakref.ref(storage, self._freer(key)), size, category)
        self.current += size
        self.by_category[category] += size

    def _freer(self, key: int) -> Any:
        def free(_ref: Any) -> None:
            entry = self._live.pop(key, None)
            if entry is not None:
                self.current -= entry[1]
                self.by_category[entry[2]] -= entry[1]

        return free

    def _update_peak(self) -> None:
        if self.current > self.peak:
            self.peak = self.current
            self.peak_by_category = {k: v for k, v in self.by_category.items() if v}

    def reset_peak(self) -> None:
        """Start a new peak from the bytes live now."""
        self.peak = self.current
        self.peak_by_category = {k: v for k, v in self.by_category.items() if v}

    @contextlib.contextmanager
    def phase(self, label: str) -> Iterator[None]:
        """Label storages created inside the block (backward-created ones stay ``backward``)."""
        old, self._phase = self._phase, label
        try:
            yield
        finally:
            self._phase = old

    # ------------------------------------------------------------------ dispatch
    def __torch_dispatch__(self, func: Any, types: Any, args: Any = (), kwargs: Any = None) -> Any:
        kwargs = kwargs or {}
        if self.fake_scalars and func in _SCALAR_OPS and _is_fake(args[0]):
            dt = args[0].dtype
            return False if dt == torch.bool else (0 if not dt.is_floating_point else 0.0)
        out = func(*args, **kwargs)
        label = self._label()
        for t in tree_leaves(out):
            if isinstance(t, torch.Tensor):
                self._add(t, label)
        self._update_peak()
        return out


def tensor_bytes(tensors: Iterable[torch.Tensor]) -> int:
    """Bytes of the distinct storages behind ``tensors`` (shared storages counted once)."""
    seen: dict[int, int] = {}
    for t in tensors:
        try:
            st = t.untyped_storage()
        except (NotImplementedError, RuntimeError):
            seen[id(t)] = t.numel() * t.element_size()
            continue
        seen[id(st)] = int(st.nbytes())
    return sum(seen.values())
