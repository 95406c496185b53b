"""Adapters whose tensors are ``FakeTensor`` s: shapes, dtypes and devices, no data, no memory.

How the planner gets a real-size model on a laptop (PyTorch 2.x, CPU-only builds included):

1. the adapter is built with its weights on the ``meta`` device (``from_config(folder,
   device="meta")`` for a real configuration) or, for the tiny test models, built as usual on the
   CPU (their weights are kilobytes);
2. :func:`materialise` then swaps every parameter, buffer and tensor attribute for an empty
   ``FakeTensor`` of the same shape on the planned device (``cpu`` by default, see
   :mod:`.planner`), cast to the planned dtype.

Fake ``cuda`` tensors: they can be *created* on a CPU-only torch (2.13), but running a protection
step on them aborts the whole process (``c10::Error ... PyTorch is not linked with support for
cuda devices`` from ``getDeviceGuardImpl``, thrown where no Python exception can catch it), so
the planner uses them only when torch has CUDA. Other quirks handled here: a device must carry
its index (``cuda:0``; a bare ``"cuda"`` asks the CUDA runtime for the current device), and
``Module.to`` cannot convert a module to fake tensors (it tries to swap parameter objects), hence
the direct replacement in :func:`materialise`. Real CPU tensors met inside the mode (scheduler
tables) are converted on the fly (``allow_non_fake_inputs``).
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import torch
from torch import nn
from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode


def fake_mode() -> FakeTensorMode:
    """A fresh ``FakeTensorMode`` that accepts real tensors as inputs (converted on the fly)."""
    return FakeTensorMode(allow_non_fake_inputs=True)


def plan_device(device: str | torch.device) -> torch.device:
    """``"cuda"`` -> ``cuda:0`` (see the module docstring); other devices unchanged."""
    dev = torch.device(device)
    if dev.type == "cuda" and dev.index is None:
        return torch.device("cuda", 0)
    return dev


def modules(adapter: Any) -> dict[str, nn.Module]:
    """The resident ``nn.Module`` components of an adapter: its pipeline's components (a diffusers
    pipeline's ``components``, or the module attributes of a plain pipeline object such as
    Open-Sora's dataclass) and any module held directly as an attribute, by name (each once)."""
    found: dict[str, nn.Module] = {}

    def take(items: Any) -> None:
        for name, value in items:
            if isinstance(value, nn.Module) and all(value is not m for m in found.values()):
                found[name.lstrip("_")] = value

    pipe = getattr(adapter, "pipe", None)
    take((getattr(pipe, "components", None) or {}).items())
    if pipe is not None and not isinstance(pipe, nn.Module) and hasattr(pipe, "__dict__"):
        take(vars(pipe).items())
    take(vars(adapter).items())
    return found


def _tensor_attrs(adapter: Any) -> Iterator[tuple[dict[str, Any], str, torch.Tensor]]:
    """(container, key, tensor) for tensors held by the adapter directly or in a dict attribute."""
    for key, value in list(vars(adapter).items()):
        if isinstance(value, torch.Tensor):
            yield vars(adapter), key, value
        elif isinstance(value, dict):
            for k, v in list(value.items()):
                if isinstance(v, torch.Tensor):
                    yield value, k, v


def _empty(t: torch.Tensor, device: torch.device, dtype: torch.dtype | None) -> torch.Tensor:
    dt = dtype if dtype is not None and t.is_floating_point() else t.dtype
    return torch.empty(t.shape, dtype=dt, device=device)


def materialise(
    adapter: Any, mode: FakeTensorMode, device: torch.device, dtype: torch.dtype | None
) -> Any:
    """Replace every parameter, buffer and tensor attribute of ``adapter`` by an empty fake tensor
    on ``device`` (floating ones cast to ``dtype``); set ``adapter.device``/``dtype``. In place.

    ``requires_grad`` of parameters is kept (adapters freeze their weights).
    """
    with mode:
        for module in modules(adapter).values():
            for sub in module.modules():
                for name, p in list(sub._parameters.items()):
                    if p is not None and not isinstance(p, FakeTensor):
                        fake = _empty(p, device, dtype)
                        sub._parameters[name] = nn.Parameter(fake, requires_grad=p.requires_grad)
                for name, b in list(sub._buffers.items()):
                    if b is not None and not isinstance(b, FakeTensor):
                        sub._buffers[name] = _empty(b, device, dtype)
        for holder, key, t in _tensor_attrs(adapter):
            holder[key] = _empty(t, device, dtype)
    adapter.device = device
    if dtype is not None:
        adapter.dtype = dtype
    return adapter
