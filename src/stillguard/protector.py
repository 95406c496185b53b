"""The amortized protector: a small network that maps a photo to its perturbation in one pass.

Idea (FastProtect, DiffVax and other amortized attacks on image editors; for image-to-video models
this is stillguard's own): instead of running 100 PGD steps of a method per photo, train once a
network ``f`` so that ``x + f(x)`` minimises that method's loss on average over photos; protecting
a photo is then one forward pass of ``f``. Training lives in :mod:`stillguard.toy.training.protector`
(never imported at run time); the forward pass is the ``amortized`` method
(:mod:`stillguard.methods.amortized`).

The network (:class:`~stillguard.protector_net.ProtectorNet`) is a small fully convolutional U-Net
whose output goes through ``eps * tanh``: inside the L-infinity budget **by construction**.

Working size (choice): a protector trained at the target's working resolution (64x64 for the toy
targets) records it as ``work_size``. A photo of another size is resized to it (antialiased
bicubic, as the adapters resize), the perturbation is computed there and resized back bilinearly,
which is a convex combination of values in ``[-eps, eps]`` and so stays in the budget. The target
only ever sees the photo at its working size, where this perturbation is the one it was trained
for. ``work_size=None`` (a protector trained on several sizes) runs at the photo's own size.

File format: safetensors only (weights float32), with string metadata ``format``
(:data:`FORMAT`), ``architecture`` (JSON), ``eps``, ``work_size`` (JSON) and ``training`` (JSON:
method, its options, targets, data, steps, seeds, measured losses). :func:`load_protector` refuses
anything else with one clear message.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from .errors import InputError
from .protector_net import Architecture, ProtectorNet

__all__ = ["Architecture", "Protector", "ProtectorNet", "load_protector", "save_protector"]

log = logging.getLogger(__name__)

FORMAT = "stillguard-protector/1"
#: files larger than this are refused before reading (a protector is a few MB)
MAX_FILE_BYTES = 256 * 2**20


@dataclass
class Protector:
    """A trained (or fresh) protector: the network, its budget and working size, its record.

    Attributes:
        net: the network (eval mode once loaded).
        eps: the RGB L-infinity budget it was trained for (``[0, 1]`` units).
        work_size: ``(H, W)`` it runs at (see the module docstring), or ``None``: the photo's size.
        training: what it was trained on and how (JSON-able; see :data:`FORMAT`).
        sha256: the file's hash once loaded from a file (``""`` for a fresh one).
        source: a label for messages and sidecars (the shipped file's name, or the path given).
    """

    net: ProtectorNet
    eps: float = 8 / 255
    work_size: tuple[int, int] | None = (64, 64)
    training: dict[str, Any] = field(default_factory=dict)
    sha256: str = ""
    source: str = ""

    def perturb(self, x: Tensor, eps: float | None = None) -> Tensor:
        """The perturbation of ``x``, each entry in ``[-eps, eps]`` (default: the trained budget).

        Differentiable in the network's parameters (training) and in ``x``.

        Shape:
            ``x`` ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, H, W)``.
        """
        eps = self.eps if eps is None else float(eps)
        size = tuple(x.shape[-2:])
        p = next(self.net.parameters())
        xin = x.to(p.device, p.dtype)
        if self.work_size is not None and size != tuple(self.work_size):
            xin = nn.functional.interpolate(
                xin, size=self.work_size, mode="bicubic", antialias=True, align_corners=False
            ).clamp(0, 1)
        delta = eps * torch.tanh(self.net(xin))
        if delta.shape[-2:] != size:  # bilinear: a convex combination, still within eps
            delta = nn.functional.interpolate(
                delta, size=size, mode="bilinear", antialias=True, align_corners=False
            )
        return delta.to(x.device, x.dtype)

    def targets(self) -> list[tuple[str, str]]:
        """``(target, model)`` of every model it was trained against, in training order."""
        return [(str(t["target"]), str(t["model"])) for t in self.training.get("targets", [])]

    def metadata(self) -> dict[str, str]:
        """The file's string metadata (see :data:`FORMAT`)."""
        return {
            "format": FORMAT,
            "architecture": json.dumps(asdict(self.net.arch)),
            "eps": repr(float(self.eps)),
            "work_size": json.dumps(list(self.work_size) if self.work_size else None),
            "training": json.dumps(self.training, sort_keys=True, default=str),
        }

    def describe(self) -> dict[str, Any]:
        """JSON-able summary for sidecars: file, hash, budget, size and what it was trained on."""
        keys = ("method", "method_options", "targets", "steps", "data", "seed")
        return {
            "protector": self.source,
            "sha256": self.sha256,
            "eps": self.eps,
            "work_size": list(self.work_size) if self.work_size else None,
            "params": n_params(self.net),
            "trained": {k: self.training[k] for k in keys if k in self.training},
        }


def n_params(net: nn.Module) -> int:
    """Number of parameters of ``net``."""
    return sum(p.numel() for p in net.parameters())


def state_tensors(net: nn.Module) -> dict[str, Tensor]:
    """The network's weights as contiguous float32 CPU tensors (what the file stores)."""
    return {k: v.detach().float().cpu().contiguous() for k, v in net.state_dict().items()}


def save_protector(protector: Protector, path: str | os.PathLike[str]) -> Path:
    """Write ``protector`` as a safetensors file (atomically: a temporary file, then a rename)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(path.name + ".tmp")
    save_file(state_tensors(protector.net), str(tmp), metadata=protector.metadata())
    os.replace(tmp, path)
    return path


def load_protector(path: str | os.PathLike[str], *, source: str | None = None) -> Protector:
    """Read a protector file (safetensors; see the module docstring).

    Raises:
        InputError: a missing, unreadable, oversized or foreign file, or one whose weights do not
            match its recorded architecture; the message says which and what to do.
    """
    from safetensors import SafetensorError, safe_open

    from .files import sha256_file

    p = Path(path)
    hint = "give a file written by `stillguard train-protector` (NAME.safetensors)"
    if not p.is_file():
        raise InputError(f"protector {p}: no such file; {hint}")
    if p.stat().st_size > MAX_FILE_BYTES:
        raise InputError(f"protector {p} is larger than {MAX_FILE_BYTES >> 20} MB; {hint}")
    try:
        with safe_open(str(p), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 (safe_open API)
    except (SafetensorError, OSError, ValueError, RuntimeError) as e:
        raise InputError(
            f"protector {p} is not a readable safetensors file ({e}); {hint}"
        ) from None
    if meta.get("format") != FORMAT:
        raise InputError(
            f"protector {p} is not a stillguard protector (format {meta.get('format')!r}); {hint}"
        )
    try:
        arch = Architecture(**json.loads(meta["architecture"]))
        eps = float(meta["eps"])
        size = json.loads(meta.get("work_size", "null"))
        training = json.loads(meta.get("training", "{}"))
        if not (0 < eps <= 1) or not isinstance(training, dict):
            raise ValueError("eps or training record out of range")
        work = None if size is None else (int(size[0]), int(size[1]))
    except (KeyError, ValueError, TypeError, IndexError) as e:
        raise InputError(f"protector {p} has broken metadata ({e}); {hint}") from None
    net = ProtectorNet(arch)
    want = net.state_dict()
    bad = sorted(set(want) ^ set(tensors)) + [
        k for k in want if k in tensors and tensors[k].shape != want[k].shape
    ]
    if bad:
        raise InputError(
            f"protector {p}: its weights do not match its architecture ({', '.join(bad[:3])}); {hint}"
        )
    net.load_state_dict({k: v.float() for k, v in tensors.items()})
    net.eval().requires_grad_(False)
    return Protector(net, eps, work, training, sha256_file(p), source or str(p))


def shipped_dir() -> Path:
    """The folder of the protectors shipped for the toy targets."""
    return Path(__file__).resolve().parent / "toy" / "protectors"


def shipped_for(targets: Sequence[tuple[str, str]]) -> Path:
    """The shipped protector trained against exactly ``targets`` (``(target, model)`` pairs).

    Raises:
        InputError: none was shipped for them (the message lists those that were).
    """
    want = sorted(set(targets))
    found = []
    for p in sorted(shipped_dir().glob("*.safetensors")):
        from safetensors import safe_open

        with safe_open(str(p), framework="pt", device="cpu") as f:
            training = json.loads((f.metadata() or {}).get("training", "{}"))
        have = sorted({(str(t["target"]), str(t["model"])) for t in training.get("targets", [])})
        if have == want:
            return p
        found.append("+".join(f"{t}:{m}" for t, m in have))
    names = "+".join(f"{t}:{m}" for t, m in want) or "no target"
    raise InputError(
        f"no shipped protector for {names} (shipped: {', '.join(found) or 'none'}); train one "
        "with `stillguard train-protector` and pass it with --protector FILE (protector=...)"
    )
