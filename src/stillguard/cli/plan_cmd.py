"""`stillguard plan`: memory, FLOPs and time of a protection run, before running it (no weights)."""

from __future__ import annotations

from typing import Annotated, Any

import typer

from ._common import DEBUG, JSON, _emit_json, _errors, app


@app.command(name="plan")
def plan_cmd(
    target: Annotated[str, typer.Option(help="Target model family.")] = "cogvideox-i2v",
    model: Annotated[
        str | None,
        typer.Option(
            help="Hub id with a shipped config, a local folder (configs only), 'toy' or 'tiny' "
            "[default: the real checkpoint's shipped config]."
        ),
    ] = None,
    method: Annotated[str | None, typer.Option(help="Method [default: the preset's].")] = None,
    preset: Annotated[
        str | None, typer.Option(help="Preset name or .toml file (steps, EOT, options).")
    ] = None,
    steps: Annotated[int | None, typer.Option(help="PGD steps [default: the preset's].")] = None,
    dtype: Annotated[str, typer.Option(help="Adapter dtype.")] = "bf16",
    gpu: Annotated[str, typer.Option(help="GPU class for the time estimate.")] = "H100",
    gpu_memory: Annotated[
        str | None, typer.Option(help="Memory to fit, e.g. 24GiB or 80GB ('auto': free CUDA).")
    ] = None,
    rungs: Annotated[
        str | None,
        typer.Option(help="Memory rungs to apply, comma-separated (e.g. gradient-checkpointing)."),
    ] = None,
    ladder: Annotated[
        bool, typer.Option("--ladder", help="Add memory rungs in order until it fits --gpu-memory.")
    ] = False,
    batch_size: Annotated[
        int, typer.Option(help="Images protected together (peak memory is the batch's).")
    ] = 1,
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:
    """Plan a protection run: parameters, peak memory, FLOPs, time per image, whether it fits."""
    with _errors(debug):
        from ..bounds import check_all
        from ..errors import InputError
        from ..plan import choose_rungs, plan
        from ..plan.gpus import check_memory
        from ..plan.rungs import Settings, apply_all

        check_all({"--steps": ("steps", steps), "--batch-size": ("batch_size", batch_size)})
        memory = None if gpu_memory is None else check_memory(gpu_memory)
        chosen = [r.strip() for r in (rungs or "").split(",") if r.strip()]
        apply_all(chosen, Settings())  # rung values (frames=N, resolution=HxW) checked first
        args: dict[str, Any] = dict(model=model, method=method, preset=preset, steps=steps,
                                    dtype=dtype, gpu=gpu, batch_size=batch_size)  # fmt: skip
        if ladder:
            if memory is None:
                raise InputError("--ladder climbs until the plan fits: give --gpu-memory too")
            _, result = choose_rungs(target, gpu_memory=memory, rungs=chosen, **args)
        else:
            result = plan(target, gpu_memory=memory, rungs=chosen, **args)
        if json_out:
            _emit_json(result.to_dict())
            return
        for line in table(result):
            typer.echo(line)


def _count(n: float) -> str:
    for unit, size in (("T", 1e12), ("B", 1e9), ("M", 1e6), ("K", 1e3)):
        if n >= size:
            return f"{n / size:.2f} {unit}"
    return f"{n:.0f}"


def _seconds(s: float) -> str:
    if s >= 3600:
        return f"{s / 3600:.2f} h"
    if s >= 60:
        return f"{s / 60:.1f} min"
    return f"{s:.3g} s"


def table(p: Any) -> list[str]:
    """The plan as aligned text lines for the terminal."""
    from ..plan.gpus import SUSTAINED_FRACTION
    from ..plan.gpus import human_bytes as _human

    def human_bytes(n: float) -> str:  # in the units the user wrote --gpu-memory in
        return _human(n, like=p.gpu_memory)

    model = p.model or "published checkpoint"
    lines = [
        f"plan: {p.target} ({model}), {p.method}, {p.dtype}, preset {p.preset} "
        f"({p.steps} steps x {p.eot_draws} draw)",
        f"source: {p.source}; image {p.image_size[0]}x{p.image_size[1]}"
        + (f", batch of {p.batch_size}" if p.batch_size > 1 else ""),
        "",
        f"{'component':<22}{'parameters':>14}{'weights':>14}",
    ]
    for name, c in p.components.items():
        lines.append(f"{name:<22}{_count(c['params']):>14}{human_bytes(c['weight_bytes']):>14}")
    lines.append(f"{'total resident':<22}{_count(p.params):>14}{human_bytes(p.weight_bytes):>14}")
    lines += ["", f"{'peak memory of one step':<36}{human_bytes(p.peak_bytes):>14}"]
    for cat, size in sorted(p.peak_breakdown.items(), key=lambda kv: -kv[1]):
        lines.append(f"  {cat:<34}{human_bytes(size):>14}")
    lines.append(f"{'need (+ assumed margin)':<36}{human_bytes(p.need_bytes):>14}")
    lines += [
        f"{'FLOPs per step':<36}{_count(p.flops_per_step) + 'FLOP':>14}",
        f"{'time per step on ' + p.gpu + ' (estimate)':<36}{_seconds(p.seconds_per_step):>14}",
        f"{'time per image (estimate)':<36}{_seconds(p.seconds_per_image):>14}",
        f"  assumed {p.assumed_tflops:g} TFLOP/s sustained = {SUSTAINED_FRACTION:.0%} of the "
        f"{p.gpu_peak_tflops:g} TFLOP/s bf16 datasheet peak",
        f"{'memory rungs in effect':<36}{', '.join(p.rungs) or 'none':>14}",
    ]
    if p.attention:
        lines.append(f"attention optimised: {p.attention}")
    for rung, why in p.skipped_rungs.items():
        lines.append(f"  left out {rung}: {why}")
    if p.fits is not None:
        verdict = "yes" if p.fits else "NO"
        lines.append(f"{'fits ' + human_bytes(p.gpu_memory) + '?':<36}{verdict:>14}")
    lines.append(f"(planned in {p.plan_seconds:g} s on fake tensors; memory is exact for the "
                 "tensors PyTorch allocates, time is an estimate)")  # fmt: skip
    return lines
