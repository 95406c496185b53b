"""Memory of one protector training step, planned on fake tensors before any weights load.

One training step holds, at its peak, the protector's forward activations for the batch, its
weights, gradients and AdamW moments (16 bytes a parameter), and one target's forward and
backward of the method's loss on the batch (members of an ensemble run one after the other, so
the largest member counts). The target's part is :func:`stillguard.plan.plan` of the method at
that batch size (one image when the method cannot batch: training then runs photo by photo); the
protector's part is tracked op by op on fake tensors with the planner's
:class:`~stillguard.plan.memory.MemoryTracker`. Same caveats as the planner: storage bytes only,
plus its assumed margin (:func:`stillguard.plan.gpus.need_bytes`).
"""

from __future__ import annotations

from typing import Any

import torch

from stillguard.protector import Architecture, ProtectorNet, n_params


def protector_bytes(arch: Architecture, batch: int, size: tuple[int, int]) -> dict[str, int]:
    """The protector's own bytes in a training step: ``resident`` (weights, gradients, AdamW
    moments) and ``activations`` (its forward at ``batch`` photos of ``size``, kept for its
    backward)."""
    from stillguard.plan.fake import fake_mode
    from stillguard.plan.memory import MemoryTracker

    mode = fake_mode()
    with mode:
        net = ProtectorNet(arch)
        x = torch.rand(batch, 3, *size)
    tracker = MemoryTracker(fake_scalars=True)
    with mode, tracker:
        out = torch.tanh(net(x))
        del out
    return {"resident": 16 * n_params(net), "activations": int(tracker.peak)}


def plan_training(
    pairs: list[tuple[str, str]],
    method: str,
    method_options: dict[str, Any],
    arch: Architecture,
    batch: int,
    *,
    dtype: str = "float32",
    gpu_memory: str | int | None = None,
) -> dict[str, Any]:
    """Plan one training step against every member; returns a JSON-able summary with
    ``need_bytes`` (the largest member plus the protector, with the planner's margin) and
    ``fits`` (``None`` without ``gpu_memory``).

    Raises:
        InputError / ModelError: what :func:`stillguard.plan.plan` raises for a target it cannot
            build from its configuration.
    """
    import stillguard.plugins  # noqa: F401  (fills the registries)
    from stillguard.plan import parse_memory, plan
    from stillguard.plan.gpus import human_bytes, need_bytes
    from stillguard.registry import METHODS

    batchable = METHODS.build(method, **method_options).batchable()
    per_pass = batch if batchable else 1
    members = []
    for target, model in pairs:
        p = plan(target, model=model, method=method, method_options=method_options, steps=1,
                 dtype=dtype, batch_size=per_pass)  # fmt: skip
        size = p.image_size
        members.append({"target": target, "model": model, "peak_bytes": p.peak_bytes, "size": size})
    size = tuple(members[0]["size"])
    own = protector_bytes(arch, batch, size)
    peak = max(m["peak_bytes"] for m in members) + own["resident"] + own["activations"]
    need = need_bytes(peak)
    memory = None if gpu_memory is None else parse_memory(gpu_memory)
    return {
        "members": members,
        "photos_per_pass": per_pass,
        "protector": own,
        "peak_bytes": peak,
        "need_bytes": need,
        "need": human_bytes(need),
        "gpu_memory": memory,
        "fits": None if memory is None else need <= memory,
    }
