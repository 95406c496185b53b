"""The transformer training loop both toy families share (:mod:`.stages`, :mod:`.wan_stages`).

What the families share: the transformer is built after ``torch.manual_seed(seed + 1)``, batches
are drawn from a generator seeded ``seed + 2``; AdamW (lr ``s.lr``, weight decay 0.01, betas
(0.9, 0.99)) with a linear warm-up over ``warmup_steps`` steps times a cosine from 1 to 5 % over the
fraction of the wall-clock budget used; gradient clipping at norm 1; an EMA of the weights with
decay ``min(0.999, (1 + step) / (10 + step))`` (the EMA is what is exported); a running loss
``0.98·run + 0.02·loss``. Every ``s.checkpoint_minutes`` of training time and when the budget
ends, the EMA is validated and the state (model, EMA, optimiser, generator, step, time, log) is
written atomically to ``transformer_state.pt``, so that ``--resume`` continues bit for bit.

What differs (the objective, the batch layout, the warm-up length, how often progress is logged)
is passed in: ``step_loss(model, idx, gen)`` is the training loss of the cached examples ``idx``
(further draws from ``gen``), ``validate(ema)`` the validation loss.
"""

from __future__ import annotations

import copy
import logging
import math
import time
from collections.abc import Callable
from typing import Any

import torch

from stillguard.toy.training.checkpoints import load_checkpoint, log_progress, save_checkpoint

logger = logging.getLogger("stillguard.toy.training.stages")


def train_with_ema(
    s: Any,
    build_model: Callable[[], torch.nn.Module],
    n_train: int,
    step_loss: Callable[[torch.nn.Module, torch.Tensor, torch.Generator], torch.Tensor],
    validate: Callable[[torch.nn.Module], float],
    *,
    warmup_steps: int,
    log_every: int,
    metric: str,
) -> tuple[torch.nn.Module, list[dict]]:
    """Train ``build_model()`` for ``s.minutes_transformer`` minutes on ``n_train`` cached
    examples (batch ``s.batch``, indices drawn uniformly with replacement); ``metric`` names the
    validation loss in the log lines.

    Returns:
        ``(ema, log)``: the EMA model in eval mode and the validation log (one entry per
        validation: step, elapsed seconds, running loss, EMA validation loss).
    """
    path = s.out / "transformer_state.pt"
    torch.manual_seed(s.seed + 1)
    model = build_model().to(s.device)
    ema = copy.deepcopy(model).eval().requires_grad_(False)
    opt = torch.optim.AdamW(model.parameters(), lr=s.lr, weight_decay=0.01, betas=(0.9, 0.99))
    gen = torch.Generator(s.device).manual_seed(s.seed + 2)
    step, elapsed, run, log = 0, 0.0, 0.0, []
    state = load_checkpoint(path, s)
    if state is not None:
        model.load_state_dict(state["model"])
        ema.load_state_dict(state["ema"])
        opt.load_state_dict(state["opt"])
        gen.set_state(state["gen"].to(gen.get_state().device))
        step, elapsed, run, log = state["step"], state["elapsed"], state["run"], state["log"]
    budget = s.minutes_transformer * 60
    t0, s0, last_ck = time.time(), step, elapsed

    def checkpoint(done: bool) -> None:
        blob = {"model": model.state_dict(), "ema": ema.state_dict(), "opt": opt.state_dict()}
        blob |= {"gen": gen.get_state(), "step": step, "elapsed": elapsed, "run": run, "log": log}
        save_checkpoint(blob | {"done": done}, path)

    def validation() -> float:
        vl = validate(ema)
        log.append({"step": step, "elapsed": elapsed, "loss_avg": run, "val_loss_ema": vl})
        logger.info("transformer step %d: validation %s (EMA) %.4f", step, metric, vl)
        return vl

    done = state is not None and state.get("done", False)
    model.train()
    while not done and elapsed < budget:
        start = time.time()
        warm = min(1.0, (step + 1) / warmup_steps)
        cos = 0.05 + 0.95 * 0.5 * (1 + math.cos(math.pi * elapsed / budget))
        for g in opt.param_groups:
            g["lr"] = s.lr * warm * cos
        idx = torch.randint(0, n_train, (s.batch,), generator=gen, device=s.device).cpu()
        loss = step_loss(model, idx, gen)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        with torch.no_grad():
            d = min(0.999, (1 + step) / (10 + step))
            for pe, pm in zip(ema.parameters(), model.parameters(), strict=True):
                pe.mul_(d).add_(pm, alpha=1 - d)
        step += 1
        run = loss.item() if step == 1 else 0.98 * run + 0.02 * loss.item()
        elapsed += time.time() - start
        if step % log_every == 0:
            log_progress("transformer", step, elapsed, budget, t0, s0, loss_avg=run)
        if elapsed - last_ck > s.checkpoint_minutes * 60:
            validation()
            checkpoint(False)
            last_ck = elapsed
    if not done:
        vl = validation()
        logger.info(
            "transformer done: %d steps, %.1f min, validation %s %.4f",
            step, elapsed / 60, metric, vl,
        )  # fmt: skip
        checkpoint(True)
    return ema, log
