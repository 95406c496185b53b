"""The memory ladder: climb the rungs of :mod:`.rungs`, in their fixed order, until a plan fits.

``choose_rungs(target, ..., gpu_memory=...)`` plans the run as asked; if it does not fit, it adds
rungs one at a time (``bf16``, ``gradient-checkpointing``, ``vae-slicing``, ``vae-tiling``, the
levels of ``sampled-attention``, ``pooled-attention``, then the levels of ``frames``,
``resolution`` and ``depth``), re-planning after each, and stops at the first plan that fits.
``sampled-attention`` halves the exact query rows per map from the method's ``max_queries`` down
to :data:`.rungs.MIN_QUERIES`, so exact-row sampling is always tried before pooling. Levels
halve what they cut: ``frames`` keeps
about 1/2, then 1/4 of the latent frames (at least 2), ``resolution`` 3/4 then 1/2 of each side
(multiples of the model's size step), ``depth`` 1/2, 1/4, 1/8 of the attention layers (at least 1).
A rung whose option the target or the method does not take, or whose plan fails (the model
refuses the setting), is left out and reported in the plan's ``skipped_rungs`` with the reason. When even the last rung does not fit, :class:`LadderError` says so
with the smallest need found.
"""

from __future__ import annotations

import inspect
from typing import Any

from ..errors import InputError, StillguardError
from ..registry import ADAPTERS, METHODS
from . import gpus as G
from . import rungs as R
from .planner import Plan, plan


class LadderError(InputError):
    """No rung combination fits the given GPU memory."""


def _takes(fn: Any, names: tuple[str, ...]) -> bool:
    """``fn`` declares all ``names`` or takes ``**kwargs`` (then building it tells)."""
    params = inspect.signature(fn).parameters
    if all(n in params for n in names):
        return True
    return any(p.kind is p.VAR_KEYWORD for p in params.values())


def _adapter_takes(target: str, *names: str) -> bool:
    from .build import has_from_config

    cls = ADAPTERS.get(target)
    fns = [cls.from_pretrained] + ([cls.from_config] if has_from_config(cls) else [])
    return all(_takes(f, names) for f in fns)


def _method_has(method: str, name: str) -> bool:
    return any(o[0] == name for o in METHODS.options(method))


def _levels(rung: str, facts: dict[str, int]) -> list[str]:
    if rung == "sampled-attention":
        q, out = facts.get("max_queries", 256), []
        while q >= R.MIN_QUERIES:
            out.append(f"sampled-attention={q}")
            q //= 2
        return out
    if rung == "frames":
        step, latent = facts["frame_step"], (facts["opt_num_frames"] - 1) // facts["frame_step"] + 1
        out = []
        for div in (2, 4):
            n = max(2, latent // div)
            frames = (n - 1) * step + 1
            if frames < facts["opt_num_frames"] and f"frames={frames}" not in out:
                out.append(f"frames={frames}")
        return out
    if rung == "resolution":
        s = facts["res_step"]
        out = []
        for f in (0.75, 0.5):
            h = max(s, int(facts["height"] * f) // s * s)
            w = max(s, int(facts["width"] * f) // s * s)
            if (h, w) != (facts["height"], facts["width"]) and f"resolution={h}x{w}" not in out:
                out.append(f"resolution={h}x{w}")
        return out
    if rung == "depth":
        n = facts.get("attention_layers", 0)
        return [f"depth={max(1, n // d)}" for d in (2, 4, 8) if n // d >= 1 and n // d < n]
    return [rung]


def _unavailable(rung: str, target: str, method: str) -> str | None:
    """Why ``rung`` cannot apply to this target/method, or ``None``."""
    adapter_opts = {"gradient-checkpointing": ("gradient_checkpointing",),
                    "vae-slicing": ("vae_slicing",), "vae-tiling": ("vae_tiling",),
                    "frames": ("opt_num_frames",), "resolution": ("height", "width")}  # fmt: skip
    method_opts = {"sampled-attention": "attention_mode", "pooled-attention": "attention_mode",
                   "depth": "layers"}  # fmt: skip
    if rung in adapter_opts and not _adapter_takes(target, *adapter_opts[rung]):
        return f"target {target!r} has no option {', '.join(adapter_opts[rung])}"
    if rung in method_opts and not _method_has(method, method_opts[rung]):
        return f"method {method!r} has no option {method_opts[rung]}"
    return None


def choose_rungs(
    target: str = "cogvideox-i2v",
    *,
    gpu_memory: int | str,
    rungs: list[str] | tuple[str, ...] = (),
    **plan_args: Any,
) -> tuple[list[str], Plan]:
    """Rungs that make the run fit ``gpu_memory``, and the plan with them.

    Args:
        target, plan_args: as for :func:`.planner.plan` (``model``, ``method``, ``preset``, ...).
        gpu_memory: bytes or a size such as ``"24GiB"`` (``"auto"``: free CUDA memory).
        rungs: rungs the user already asked for (kept, and climbed past).

    Returns:
        ``(rungs in effect, plan)``; ``plan.skipped_rungs`` says which rungs were left out, why.

    Raises:
        LadderError: nothing fits; the message gives the smallest need and its rungs.
    """
    memory = G.parse_memory(gpu_memory)
    applied = list(rungs)
    best = plan(target, gpu_memory=memory, rungs=applied, **plan_args)
    if best.fits:
        return best.rungs, best
    image_size = plan_args.pop("image_size", None) or best.image_size
    facts, method, skipped = dict(best.facts), best.method, {}
    for rung in R.LADDER:
        if rung in best.rungs:  # a switch already on (asked for, or the dtype is bf16)
            continue
        reason = _unavailable(rung, target, method)
        if reason is not None:
            skipped[rung] = reason
            continue
        for level in _levels(rung, facts):
            trial = [r for r in applied if R.parse(r)[0] != rung] + [level]
            try:
                p = plan(target, gpu_memory=memory, rungs=trial, image_size=image_size, **plan_args)
            except (StillguardError, ValueError, RuntimeError, TypeError) as err:
                # the target or method refuses this setting (e.g. CogVideoX-5b-I2V's learned
                # positional embeddings allow one resolution only): leave the rung out
                msg = " ".join(str(err).split())[:200]
                skipped[rung] = f"{level} rejected: {type(err).__name__}: {msg}"
                break
            applied = trial
            if p.need_bytes < best.need_bytes:
                best = p
            if p.fits:
                p.skipped_rungs = dict(skipped)
                return p.rungs, p
    left_out = f" (left out: {', '.join(skipped)})" if skipped else ""
    raise LadderError(
        f"{target} does not fit in {G.human_bytes(memory, like=memory)} even with every memory "
        f"rung{left_out}: the smallest need is "
        f"{G.describe_need(best.need_bytes, best.peak_bytes, like=memory)} with rungs "
        f"{', '.join(best.rungs) or 'none'}; use a GPU with at least that much memory"
    )
