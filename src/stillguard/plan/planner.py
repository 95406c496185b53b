"""``plan()``: memory, FLOPs and time of a protection run, known before running it.

The idea (issue "Real size"): build the target from its configuration with fake tensors (no
weights, no memory; :mod:`.fake`), run the method's setup and ONE protection step through a
dispatch-level tracker of live storage bytes and a FLOP counter (:mod:`.step`), and turn the
counted FLOPs into seconds on a GPU class whose sustained throughput is an ASSUMPTION
(:mod:`.gpus`). Memory and FLOPs are exact for the ops PyTorch runs, up to what the tracker
cannot see (allocator, workspaces; :mod:`.memory`); time is an estimate.

Planned device: fake tensors live on the CPU device by default (``device="cuda"`` only where
torch has CUDA: on a CPU-only build a step on fake CUDA tensors aborts the process, see
:mod:`.fake`). On the CPU device ``scaled_dot_product_attention`` takes the fused CPU
flash-attention kernel, which saves the same tensors (output and log-sum-exp) as the CUDA flash
and memory-efficient kernels, so the planned activations match a GPU's up to kernel workspaces;
``benchmarks/gpu_calibrate.py`` checks this on a GPU.
"""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass, field
from typing import Any

import torch

from ..adapters import resolve_dtype
from ..bounds import check, check_settings
from ..errors import InputError
from ..registry import ADAPTERS, METHODS, SPACES
from . import gpus as G
from . import rungs as R
from .build import build_adapter, preset_settings, quiet
from .facts import ladder_facts
from .fake import fake_mode, modules, plan_device
from .memory import tensor_bytes
from .step import measure


@dataclass
class Plan:
    """A planned protection run. Bytes are storage bytes, FLOPs counted ones (see the modules).

    Attributes:
        components: resident component -> ``{"params": n, "weight_bytes": b}``.
        peak_breakdown: live bytes per category at the step's peak.
        seconds_per_step: one step (all EOT draws) on ``gpu`` at the ASSUMED sustained rate.
        seconds_per_image: the setup plus ``steps`` steps, same assumption, divided by
            ``batch_size`` (the FLOP model gives a batch no speed-up of its own: what batching
            gains on a GPU is utilisation, measured by ``benchmarks/batch_throughput.py``).
        batch_size: images per forward/backward (:func:`stillguard.loop.protect_batch`); peak
            memory and FLOPs per step are those of the whole batch.
        need_bytes: memory to ask for (peak plus the assumed margin of :mod:`.gpus`).
        fits: ``need_bytes <= gpu_memory``; ``None`` when no ``gpu_memory`` was given.
        rungs: memory-ladder rungs in effect (:mod:`.rungs`).
        attention: which attention estimate the run optimises, in words (``None``: the method
            reads no attention maps; :func:`.rungs.attention_estimate`).
        facts: what the ladder needs: working size, frame counts and the size steps they take.
        skipped_rungs: rungs the memory ladder left out, and why (set by :func:`.choose_rungs`).
    """

    target: str
    model: str | None
    source: str
    method: str
    method_options: dict[str, Any]
    adapter_options: dict[str, Any]
    dtype: str
    device: str
    image_size: tuple[int, int]
    params: int
    weight_bytes: int
    components: dict[str, dict[str, int]]
    peak_bytes: int
    peak_breakdown: dict[str, int]
    setup_flops: int
    flops_per_step: int
    flops_by_op: dict[str, int]
    steps: int
    batch_size: int
    eot_draws: int
    preset: str
    gpu: str
    gpu_peak_tflops: float
    assumed_tflops: float
    seconds_per_step: float
    seconds_per_image: float
    gpu_memory: int | None
    need_bytes: int
    fits: bool | None
    rungs: list[str]
    attention: str | None = None
    facts: dict[str, int] = field(default_factory=dict)
    skipped_rungs: dict[str, str] = field(default_factory=dict)
    plan_seconds: float = 0.0
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        """JSON-able: every field (``image_size`` as a list)."""
        d = asdict(self)
        d["image_size"] = list(self.image_size)
        return d


NOTES = [
    "memory: live tensor storages of one step on fake tensors; the CUDA context, library "
    "workspaces and allocator fragmentation are not in peak_bytes (need_bytes adds an assumed "
    "margin)",
    "time: an ESTIMATE from counted FLOPs (matmul, convolution, attention) at an ASSUMED sustained "
    "fraction of the GPU's datasheet bf16 peak",
]


def _components(mods: dict[str, torch.nn.Module], adapter: Any) -> dict[str, dict[str, int]]:
    out: dict[str, dict[str, int]] = {}
    for name, m in mods.items():
        params = {id(p): p for p in m.parameters()}
        out[name] = {
            "params": sum(p.numel() for p in params.values()),
            "weight_bytes": tensor_bytes([*params.values(), *m.buffers()]),
        }
    extra = [v for v in vars(adapter).values() if isinstance(v, torch.Tensor)]
    if extra:
        out["adapter tensors"] = {"params": 0, "weight_bytes": tensor_bytes(extra)}
    return out


def plan(
    target: str = "cogvideox-i2v",
    *,
    model: str | None = None,
    method: str | None = None,
    preset: str | None = None,
    method_options: dict[str, Any] | None = None,
    adapter_options: dict[str, Any] | None = None,
    steps: int | None = None,
    dtype: str = "bf16",
    gpu: str = "H100",
    gpu_memory: int | str | None = None,
    rungs: list[str] | tuple[str, ...] | None = None,
    image_size: tuple[int, int] | None = None,
    device: str = "cpu",
    batch_size: int = 1,
) -> Plan:
    """Plan one protection run of ``target`` without weights (see the module docstring).

    Args:
        target: registered adapter name.
        model: ``None`` (the target's published checkpoint, from its shipped config), a hub id
            with a shipped config, a local pipeline folder (configs only), ``"tiny"`` or ``"toy"``.
        method: method name; default: the preset's.
        preset: shipped preset name or ``.toml`` path (``"default"`` when ``None``): steps, EOT
            draws, space and the method's options come from it.
        method_options, adapter_options: override the preset's.
        steps: PGD steps per image (default: the preset's).
        dtype: adapter dtype (``"bf16"``, ``"float32"``, ...).
        gpu: GPU class for the time estimate (:data:`.gpus.GPUS`).
        gpu_memory: bytes or a size like ``"24GiB"``; sets ``fits``.
        rungs: memory-ladder rungs to apply (:mod:`.rungs`), e.g. ``["gradient-checkpointing"]``.
        image_size: ``(H, W)`` of the photo; default: the target's working resolution.
        device: device of the fake tensors (``"cpu"``; ``"cuda"`` needs a CUDA build of torch).
        batch_size: images protected together (one step's memory and FLOPs are the batch's).

    Raises:
        InputError / CapabilityError / ModelError: unknown names, options the target or method
        does not take, or a target that cannot be built from configs yet.
    """
    from .. import plugins  # noqa: F401  (fills the registries)

    t0 = time.perf_counter()
    run = preset_settings(preset)
    method = method or run["method"]
    m_opts = dict(run["method_options"]) if method == run["method"] else {}
    m_opts.update(method_options or {})
    a_opts = dict(run["target_options"]) if target == run["target"] else {}
    a_opts.update(adapter_options or {})
    check("batch_size", batch_size)  # before anything is sized (stillguard.bounds)
    n_steps = check("steps", run["steps"] if steps is None else steps)
    settings = R.apply_all(list(rungs or ()), R.Settings(str(dtype), a_opts, m_opts))
    check_settings(settings.adapter, "adapter options")
    dt = resolve_dtype(settings.dtype)
    gpu_class = G.get_gpu(gpu)
    memory = None if gpu_memory is None else G.parse_memory(gpu_memory)

    m = METHODS.build(method, **settings.method)
    if batch_size > 1 and not m.batchable():
        raise InputError(f"method {method!r} with these options is not batchable: use batch_size 1")
    dev = plan_device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise InputError(
            "planning on fake CUDA tensors needs a CUDA build of torch (on a CPU-only one a step "
            "aborts the process); plan on device='cpu', the default"
        )
    mode = fake_mode()
    sp_opts = dict(run["space_options"])
    if run["eps"] is not None:
        sp_opts["eps"] = float(run["eps"])
    space = SPACES.build(run["space"] or m.default_space, **sp_opts)
    with quiet():
        adapter, source = build_adapter(
            target, model, dtype=dt, options=settings.adapter, device=dev, mode=mode
        )
        m.check(adapter)
        mods = modules(adapter)
        h, w = image_size or (adapter.height, adapter.width)
        with mode:
            image = torch.rand(batch_size, 3, int(h), int(w), device=dev)
        seen = measure(adapter, m, space, image, modules=mods, seed=run["seed"],
                       random_start=run["random_start"], mode=mode)  # fmt: skip

    comps = _components(mods, adapter)
    draws = int(run["eot_samples"])
    rate = gpu_class.sustained_tflops * 1e12
    step_flops = seen.step_flops * draws
    need = G.need_bytes(seen.peak_bytes)
    return Plan(
        target=target,
        model=model or getattr(ADAPTERS.get(target), "default_model", None),
        source=source,
        method=method,
        method_options=m.describe(),
        adapter_options=dict(settings.adapter),
        dtype=str(dt).replace("torch.", ""),
        device=str(dev),
        image_size=(int(h), int(w)),
        params=sum(c["params"] for c in comps.values()),
        weight_bytes=sum(c["weight_bytes"] for c in comps.values()),
        components=comps,
        peak_bytes=seen.peak_bytes,
        peak_breakdown=seen.breakdown,
        setup_flops=seen.setup_flops,
        flops_per_step=step_flops,
        flops_by_op=seen.step_flops_by_op,
        steps=n_steps,
        batch_size=batch_size,
        eot_draws=draws,
        preset=run["preset"],
        gpu=gpu_class.name,
        gpu_peak_tflops=gpu_class.peak_tflops,
        assumed_tflops=round(gpu_class.sustained_tflops, 1),
        seconds_per_step=step_flops / rate,
        seconds_per_image=(seen.setup_flops + n_steps * step_flops) / rate / batch_size,
        gpu_memory=memory,
        need_bytes=need,
        fits=None if memory is None else need <= memory,
        rungs=R.in_effect(settings),
        attention=R.attention_estimate(m.describe()),
        facts=ladder_facts(adapter, m),
        plan_seconds=round(time.perf_counter() - t0, 2),
        notes=list(NOTES),
    )
