"""Resumable checkpoints of a protector's training, in safetensors (no pickle).

One file, ``checkpoint.safetensors`` in the run folder, rewritten atomically (a temporary file,
then a rename), so a run killed at any moment leaves either the previous checkpoint or the new
one. It holds:

* ``net.*``: the network's weights;
* ``opt.<i>.<key>``: the optimizer's per-parameter state (AdamW: ``step``, ``exp_avg``,
  ``exp_avg_sq``), ``i`` in ``net.parameters()`` order;
* metadata: ``step`` (optimizer steps done), ``settings`` (JSON: everything that fixes the run; a
  resume with other settings is refused, except a different number of ``steps``: the run then
  continues to the new total, its learning-rate schedule recomputed for it from the resumed step,
  which the history records), ``history`` (JSON: logged losses) and ``seconds`` (training wall
  time so far).

The random state is the step itself: every draw of step ``s`` (photos, noise, EOT parameters)
comes from generators seeded with ``(seed, s, b)``, so resuming at step ``s`` draws what an
uninterrupted run draws.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from stillguard.errors import InputError

NAME = "checkpoint.safetensors"


def save(
    path: Path,
    net: torch.nn.Module,
    opt: torch.optim.Optimizer,
    step: int,
    settings: dict[str, Any],
    history: list[dict[str, Any]],
    seconds: float,
) -> None:
    """Write the checkpoint atomically."""
    from safetensors.torch import save_file

    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in net.state_dict().items()}
    params = list(net.parameters())
    for i, p in enumerate(params):
        for key, value in opt.state.get(p, {}).items():
            t = value if isinstance(value, torch.Tensor) else torch.tensor(value)
            tensors[f"opt.{i}.{key}"] = t.detach().cpu().contiguous()
    meta = {
        "step": str(int(step)),
        "settings": json.dumps(settings, sort_keys=True, default=str),
        "history": json.dumps(history),
        "seconds": repr(float(seconds)),
    }
    tmp = path.with_name(path.name + ".tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def load(
    path: Path, net: torch.nn.Module, opt: torch.optim.Optimizer, settings: dict[str, Any]
) -> tuple[int, list[dict[str, Any]], float]:
    """Restore ``net`` and ``opt`` from ``path``; returns ``(step, history, seconds)``.

    Raises:
        InputError: the checkpoint was written with other settings (what differs is named), or
            is not a readable checkpoint.
    """
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
        saved = json.loads(meta["settings"])
        step, history, seconds = (
            int(meta["step"]),
            json.loads(meta["history"]),
            float(meta["seconds"]),
        )
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise InputError(f"{path} is not a readable training checkpoint ({e}); remove it or "
                         "choose another --out") from None  # fmt: skip
    now = json.loads(json.dumps(settings, sort_keys=True, default=str))
    diff = sorted(k for k in set(saved) | set(now) if saved.get(k) != now.get(k) and k != "steps")
    if diff:
        raise InputError(
            f"{path} was written by a run with other settings ({', '.join(diff)}): resume with the "
            "same command, or choose another --out"
        )
    net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")})
    params = list(net.parameters())
    for i, p in enumerate(params):
        state = {k.split(".", 2)[2]: v for k, v in tensors.items() if k.startswith(f"opt.{i}.")}
        if state:
            opt.state[p] = {k: v if k == "step" else v.to(p.device) for k, v in state.items()}
    return step, history, seconds
