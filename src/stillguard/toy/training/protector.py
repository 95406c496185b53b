"""Train a protector: back-propagate a method's loss through the targets into a small network.

The objective is the protection loop's, averaged over photos: minimise ``E_x[L(x + f(x))]`` where
``L`` is a registered method's loss (``rollout-freeze`` by default) against one target or an
ensemble, and ``f`` the protector network (:mod:`stillguard.protector`, output inside the budget
by construction). There is one loss and one ensemble rule: the method's own ``setup()`` and
``loss()`` through :class:`stillguard.targets.Targets`, which returns the gradient of the loss
with respect to the perturbed photos (for an ensemble each member's gradient normalised per photo,
as ``protect`` does); that gradient is then back-propagated through the network.

Choices (none comes from a paper; FastProtect and DiffVax train comparable networks for image
editors):
    * AdamW (betas 0.9/0.99, no weight decay), ``warmup`` linear steps, then cosine to 10 % of
      ``lr`` at ``steps``; gradient norm clipped to 1; the batch's gradient is the mean over its
      photos;
    * each photo's draws (sampler noise, timesteps, EOT parameters) come from its own generator
      seeded with ``(seed, step, photo)``: a resumed run draws what an uninterrupted one draws;
    * EOT (optional): step ``s`` applies transform ``s mod n`` of the list to every photo of the
      batch (the loop's round-robin), differentiably;
    * validation every ``validate_every`` steps on a fixed set (:meth:`Photos.validation`) with
      fixed draws: each member's loss on the clean and on the protected photos, so the file
      records how far training moved the loss;
    * a method that cannot take a batch (``batchable() == False``) is run photo by photo;
    * an ensemble's member ``weights`` (default equal) weigh the members' normalised gradients,
      as in ``protect``: a member whose gradient is noisier from draw to draw (the toy
      CogVideoX's, next to the toy Wan's) can be given more weight so that both losses fall.
"""

from __future__ import annotations

import dataclasses
import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from stillguard.errors import InputError
from stillguard.generators import Generators
from stillguard.loop import build_method
from stillguard.protector import Architecture, Protector, ProtectorNet, n_params, save_protector
from stillguard.settings import parse_eps
from stillguard.targets import Targets
from stillguard.toy.training import protector_checkpoint as ckpt
from stillguard.toy.training.protector_data import Photos
from stillguard.versions import package_versions

log = logging.getLogger(__name__)


@dataclass
class TrainSettings:
    """Everything that fixes a protector's training (a resume must use the same)."""

    method: str = "rollout-freeze"
    method_options: dict[str, Any] = field(default_factory=dict)
    eps: float = 8 / 255
    steps: int = 1000
    batch: int = 4
    lr: float = 1e-3
    warmup: int = 50
    width: int = 16
    levels: int = 3
    eot: tuple[str, ...] = ()
    seed: int = 0
    photos: str | None = None
    synthetic: float = 1.0
    validate_every: int = 100
    validation_size: int = 8
    weights: tuple[float, ...] = ()

    def __post_init__(self) -> None:
        self.eps = parse_eps(self.eps)
        for name, lo in (("steps", 1), ("batch", 1), ("warmup", 0), ("validate_every", 1),
                         ("validation_size", 1), ("seed", 0)):  # fmt: skip
            v = getattr(self, name)
            if isinstance(v, bool) or not isinstance(v, int) or v < lo:
                raise InputError(f"{name} must be a whole number >= {lo}, got {v!r}")
        if not (isinstance(self.lr, (int, float)) and 0 < self.lr < 1):
            raise InputError(f"lr must be in (0, 1), got {self.lr!r}")
        self.eot = tuple(self.eot)
        self.weights = tuple(float(w) for w in self.weights)
        Architecture(self.width, self.levels)  # validates the sizes

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


@dataclass
class TrainEvent:
    """Progress after each optimizer step (``step`` counts from 1)."""

    step: int
    steps: int
    loss: float
    seconds: float
    validation: dict[str, float] | None = None


def step_seed(seed: int, step: int, index: int) -> int:
    """The seed of photo ``index``'s generator at ``step`` (disjoint for every triple)."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(1, np.uint64)[0] >> 1)


def learning_rate(s: TrainSettings, step: int) -> float:
    """Linear warm-up, then cosine from ``lr`` to ``lr / 10`` at the last step."""
    if step < s.warmup:
        return s.lr * (step + 1) / s.warmup
    p = (step - s.warmup) / max(1, s.steps - s.warmup)
    return s.lr * (0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * min(p, 1.0))))


def train(
    adapters: Any,
    settings: TrainSettings,
    out: str | Path,
    *,
    callback: Callable[[TrainEvent], None] | None = None,
    checkpoint_minutes: float = 5.0,
    record: dict[str, Any] | None = None,
) -> Protector:
    """Train (or resume, when ``out`` holds a checkpoint of the same settings) a protector.

    Args:
        adapters: one target adapter or a list of them (an ensemble, equal weights).
        settings: the run (see :class:`TrainSettings`).
        out: run folder: ``checkpoint.safetensors`` (resumable), then ``protector.safetensors``.
        callback: called with a :class:`TrainEvent` after every step.
        checkpoint_minutes: wall time between checkpoints (and one at the end).
        record: extra JSON-able facts written into the protector's training record (command...).
    Returns:
        the trained :class:`Protector` (also written to ``out/protector.safetensors``).
    """
    s = settings
    targets = Targets(adapters, list(s.weights) or None)
    method = build_method(s.method, s.method_options, targets)
    if not method.optimizes:
        raise InputError(f"method {s.method!r} has no loss to train a protector with")
    members = [m.adapter for m in targets.members]
    size = (int(members[0].height), int(members[0].width))
    photos = Photos(size, s.seed, Path(s.photos) if s.photos else None, s.synthetic)
    device = targets.device
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(s.seed)
        net = ProtectorNet(Architecture(s.width, s.levels)).to(device)
    prot = Protector(net, s.eps, size)
    opt = torch.optim.AdamW(net.parameters(), lr=s.lr, betas=(0.9, 0.99), weight_decay=0.0)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    path, key = out / ckpt.NAME, s.to_dict() | {"targets": _pairs(members)}
    start, history, spent = 0, [], 0.0
    if path.exists():
        start, history, spent = ckpt.load(path, net, opt, key)
        log.info("resuming %s at step %d of %d", path, start, s.steps)
        if start < s.steps:
            history.append({"step": start, "resumed": True, "steps": s.steps})
    transforms = _transforms(s.eot)
    val = photos.validation(s.validation_size).to(device)
    clean = validate(targets, method, val, None, s.seed)
    t0, last_save = time.perf_counter(), time.perf_counter()
    for step in range(start, s.steps):
        x = photos.batch(step * s.batch, s.batch).to(device)
        gens = Generators(
            torch.Generator().manual_seed(step_seed(s.seed, step, b)) for b in range(s.batch)
        )
        for group in opt.param_groups:
            group["lr"] = learning_rate(s, step)
        xa = (x + prot.perturb(x)).clamp(0, 1)
        if transforms:
            tf = transforms[step % len(transforms)]
            xa = torch.cat([tf(xa[b : b + 1], gens[b]) for b in range(s.batch)])
        grad, values = _gradient(targets, method, x, xa, gens, step)
        opt.zero_grad(set_to_none=True)
        xa.backward(grad / s.batch)
        torch.nn.utils.clip_grad_norm_(net.parameters(), 1.0)
        opt.step()
        entry: dict[str, Any] = {"step": step + 1, "loss": float(values.mean())}
        event = TrainEvent(step + 1, s.steps, entry["loss"], spent + time.perf_counter() - t0)
        if (step + 1) % s.validate_every == 0 or step + 1 == s.steps:
            event.validation = validate(targets, method, val, prot, s.seed, clean)
            entry["validation"] = event.validation
            log.info(
                "step %d/%d loss %.4f validation %s",
                step + 1,
                s.steps,
                entry["loss"],
                event.validation,
            )
        history.append(entry)
        if callback is not None:
            callback(event)
        now = time.perf_counter()
        if now - last_save > checkpoint_minutes * 60 or step + 1 == s.steps:
            ckpt.save(path, net, opt, step + 1, key, history, spent + now - t0)
            last_save = now
    spent += time.perf_counter() - t0
    net.eval().requires_grad_(False)
    prot.training = _record(s, members, photos, history, spent, net) | (record or {})
    save_protector(prot, out / "protector.safetensors")
    return prot


def _gradient(
    targets: Targets, method: Any, x: torch.Tensor, xa: torch.Tensor, gens: Generators, step: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """The loss's gradient with respect to the perturbed photos ``xa`` and each photo's loss."""
    if method.batchable():
        gen = gens if len(gens) > 1 else gens[0]
        targets.setup(method, x, gen)
        grad, values, _ = targets.gradient(method, xa.detach(), gen, step)
        return grad, values
    parts = []
    for b in range(x.shape[0]):  # photo by photo, each with its own draws
        targets.setup(method, x[b : b + 1], gens[b])
        parts.append(targets.gradient(method, xa[b : b + 1].detach(), gens[b], step)[:2])
    return torch.cat([g for g, _ in parts]), torch.cat([v for _, v in parts])


@torch.no_grad()
def validate(
    targets: Targets,
    method: Any,
    photos: torch.Tensor,
    prot: Protector | None,
    seed: int,
    clean: dict[str, float] | None = None,
) -> dict[str, float]:
    """Each member's mean loss on the fixed validation photos, with fixed draws (clean photos
    when ``prot`` is None); with ``clean`` also each member's protected/clean ratio."""
    out: dict[str, float] = {}
    xs = photos if prot is None else (photos + prot.perturb(photos)).clamp(0, 1)
    for m in targets.members:
        vals = []
        for b in range(photos.shape[0]):
            g = torch.Generator().manual_seed(step_seed(seed, 2**40, b))  # apart from any step
            state = method.setup(m.adapter, photos[b : b + 1], g)
            loss, _ = method.loss(m.adapter, xs[b : b + 1], g, state)
            vals.append(float(loss))
        out[m.label] = float(np.mean(vals))
        if clean is not None and clean.get(m.label):
            out[f"{m.label}/ratio"] = out[m.label] / clean[m.label]
    return out


def _transforms(specs: tuple[str, ...]) -> list[Any]:
    from stillguard.transforms import parse_transform

    return [parse_transform(t) for t in specs]


def _pairs(members: list[Any]) -> list[list[str]]:
    return [[a.registry_name, a.model_id] for a in members]


def _record(
    s: TrainSettings, members: list[Any], photos: Photos, history: list[dict[str, Any]],
    seconds: float, net: torch.nn.Module,
) -> dict[str, Any]:  # fmt: skip
    """The training record stored in the protector file (see :mod:`stillguard.protector`)."""
    losses = [h["loss"] for h in history if "loss" in h]
    vals = [h for h in history if "validation" in h]
    first = float(np.mean(losses[:50])) if losses else math.nan
    last = float(np.mean(losses[-50:])) if losses else math.nan
    return {
        "method": s.method,
        "method_options": dict(s.method_options),
        "targets": [{"target": a.registry_name, "model": a.model_id} for a in members],
        "weights": list(s.weights) or None,
        "eps": s.eps,
        "steps": s.steps,
        "batch": s.batch,
        "lr": s.lr,
        "warmup": s.warmup,
        "eot": list(s.eot),
        "seed": s.seed,
        "data": photos.describe(),
        "params": n_params(net),
        "train_loss_first_50": first,
        "train_loss_last_50": last,
        "validation": vals[-1]["validation"] if vals else {},
        "validation_curve": [[h["step"], h["validation"]] for h in vals],
        "seconds": round(seconds, 1),
        "resumed_at_steps": [h["step"] for h in history if h.get("resumed")],
        "threads": torch.get_num_threads(),
        "versions": package_versions(),
    }
