"""`stillguard protect`: one image, several, or folders (batch with manifest and resume)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ..images import DEFAULT_MAX_PIXELS
from ..names import shown_name
from ._common import (
    BATCH_SIZE,
    DEBUG,
    JSON,
    _batch_size,
    _errors,
    _ignored,
    _load_target,
    _one_line,
    _progress,
    _stderr,
    _summary,
    _warn_demo_model,
    app,
    check_model_available,
)
from ._options import checked_options


# ----------------------------------------------------------------------------- protect
@app.command()
def protect(
    inputs: Annotated[
        list[Path],
        typer.Argument(metavar="IMAGE_OR_DIR...", help="Images and/or folders.", readable=False),
    ],
    out: Annotated[
        Path,
        typer.Option(
            "-o", "--out", help="Output folder, or a .png file for one image.", readable=False
        ),
    ],
    method: Annotated[
        str | None, typer.Option(help="Protection method [preset: vid-freeze].")
    ] = None,
    target: Annotated[
        str | None,
        typer.Option(
            help="Target model family, or several separated by commas to protect against all of "
            "them at once (an ensemble) [preset: cogvideox-i2v]."
        ),
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Hub id, local folder, 'toy' or 'tiny', one per target separated by commas "
            "[default: the target's real checkpoint]."
        ),
    ] = None,
    preset: Annotated[
        str, typer.Option(help="Preset name (stillguard list presets) or .toml file.")
    ] = "default",
    eps: Annotated[str | None, typer.Option(help="L-inf budget, e.g. 8/255 [preset].")] = None,
    steps: Annotated[int | None, typer.Option(help="PGD steps [preset].")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed of every random draw [preset].")] = None,
    device: Annotated[
        str | None, typer.Option(help="cpu, cuda, cuda:1, mps [preset: cpu].")
    ] = None,
    dtype: Annotated[
        str | None, typer.Option(help="float32, bf16, fp16 [preset: float32].")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="Override a preset key: section.key=value (repeatable)."),
    ] = None,
    protector: Annotated[
        Path | None,
        typer.Option(
            help="Protector file for --method amortized (stillguard train-protector) "
            "[default: the one shipped for the toy targets].",
            readable=False,
        ),  # fmt: skip
    ] = None,
    refine: Annotated[
        int | None,
        typer.Option(
            min=0,
            help="--method amortized: PGD steps of the protector's method after "
            "its one forward pass [0].",
        ),  # fmt: skip
    ] = None,
    json_out: JSON = False,
    keep_metadata: Annotated[
        bool,
        typer.Option(
            help="Copy the input's EXIF (camera, date, exposure) into the PNG, without the GPS "
            "position (default: strip all metadata)."
        ),
    ] = False,
    keep_gps: Annotated[
        bool,
        typer.Option(
            "--keep-gps",
            help="With --keep-metadata: keep the GPS position too (where the photo was taken).",
        ),
    ] = False,
    max_pixels: Annotated[
        int, typer.Option(help="Refuse larger images (decompression-bomb guard).")
    ] = DEFAULT_MAX_PIXELS,
    gpu_memory: Annotated[
        str | None,
        typer.Option(
            help="Fit the run to a GPU of this size (24GiB, 80GB, or auto: the free CUDA memory): "
            "the planner picks memory-saving settings, recorded in the sidecar."
        ),
    ] = None,
    batch_size: BATCH_SIZE = "1",
    debug: DEBUG = False,
    ray: Annotated[
        str | None,
        typer.Option(
            "--ray",
            metavar="ADDRESS",
            help="Run on Ray workers: local (a new local runtime), auto, HOST:PORT, ray://HOST:10001.",
        ),
    ] = None,
    workers: Annotated[
        int | None, typer.Option(help="Ray workers [default: one per GPU or per CPU(s)].")
    ] = None,
    cpus_per_worker: Annotated[int, typer.Option(help="CPU cores per Ray worker.")] = 1,
    follow_symlinks: Annotated[
        bool,
        typer.Option(
            "--follow-symlinks",
            help="In input folders, also follow links that lead out of the folder (default: "
            "skip them, with a line).",
        ),
    ] = False,
    verbose: Annotated[
        bool,
        typer.Option(
            "--verbose",
            help="With --ray: show Ray's own messages too (its warnings, task retries, workers' "
            "output); by default only stillguard's lines are printed.",
        ),
    ] = False,
) -> None:
    """Protect images: writes NAME.protected.png + NAME.protected.json (+ manifest.jsonl for folders)."""
    with _errors(debug, json_out):  # every number and flag checked before any work
        keep_metadata = checked_options(
            steps=steps, seed=seed, max_pixels=max_pixels, gpu_memory=gpu_memory,
            batch_size=batch_size, workers=workers, cpus_per_worker=cpus_per_worker,
            keep_metadata=keep_metadata, keep_gps=keep_gps, json_out=json_out,
        )  # fmt: skip
        if protector is not None or refine is not None:
            from ._amortized import amortized_flags

            method, set_ = amortized_flags(method, protector, refine, set_ or [])
        size = _batch_size(batch_size)
        from ..app.config import build_config

        cfg = build_config(preset, sets=set_ or [], method=method, target=target, model=model,
                           eps=eps, steps=steps, seed=seed, device=device, dtype=dtype)  # fmt: skip
        if cfg.method_name == "amortized":  # a missing or foreign protector file: before any work
            from ._amortized import check_protector

            check_protector(cfg.method_options.get("protector"), cfg.targets())
        if ray is not None:
            from ._ray import protect_on_ray

            code = protect_on_ray(inputs, out, cfg, json_out, keep_metadata, max_pixels, ray,
                                  workers, cpus_per_worker, batch_size=size,
                                  follow_symlinks=follow_symlinks,
                                  verbose=verbose or debug)  # fmt: skip
        else:
            code = _protect(inputs, out, cfg, json_out, keep_metadata, max_pixels,
                            gpu_memory=gpu_memory, batch_size=size,
                            follow_symlinks=follow_symlinks)  # fmt: skip
    raise typer.Exit(code)


def _protect(
    inputs: list[Path],
    out: Path,
    cfg: Any,
    json_out: bool,
    keep_metadata: bool | str,
    max_pixels: int,
    *,
    gpu_memory: str | None = None,
    batch_size: int = 1,
    follow_symlinks: bool = False,
) -> int:
    """The batch (or one file) in this process; returns the exit code."""
    from ..app.lossy import resave_note
    from ..app.outputs import check_writable
    from ..app.run import BatchEvent, BatchItem, BatchResult, protect_one, run_batch
    from ..app.run.unit import read
    from ..errors import InputError
    from ..formats import format_of_name, is_lossy
    from ..images import image_extensions

    if gpu_memory is not None:
        from ..app.fit import fit_config
        from ..plan.gpus import check_memory, human_bytes

        memory = check_memory(gpu_memory)
        with _stderr().status(f"planning {cfg.target_name} for {memory.text} ..."):
            cfg, fitted = fit_config(cfg, memory, batch_size=batch_size)
        if not json_out:
            typer.echo(
                f"planned for {memory.text}: rungs {', '.join(cfg.rungs) or 'none'} "
                f"(planned need {human_bytes(fitted.need_bytes, like=memory)})",
                err=True,
            )
    if out.suffix.lower() in image_extensions() - {".png"}:
        fmt = format_of_name(out)
        why = resave_note(fmt) if is_lossy(fmt) else f"it does not write {fmt}"
        raise InputError(
            f"-o {shown_name(out)}: stillguard writes PNG only, so that the budget holds on the "
            f"file it writes; {why}; give a .png file name or a folder"
        )
    single = len(inputs) == 1 and not inputs[0].is_dir() and out.suffix.lower() == ".png"
    if out.suffix.lower() == ".png" and not single:
        raise InputError(
            f"-o {shown_name(out)} is a .png file but the inputs are several or a folder; give a folder"
        )
    if single:
        item = BatchItem(inputs[0], out, out.with_suffix(".json"))
        for path in (item.output, item.sidecar):
            if os.path.realpath(path) == os.path.realpath(inputs[0]):
                raise InputError(
                    f"{shown_name(path)}: the output would overwrite the input; choose another -o"
                )
    check_writable(out.parent if single else out)
    pairs = cfg.targets()
    for _, model in pairs:
        check_model_available(model)
    err = _stderr()

    def load() -> Any:
        adapters = []
        for name, model in pairs:  # one target, or every member of an ensemble
            _warn_demo_model(model)
            with err.status(f"loading {name} ({model}) ..."):
                adapters.append(
                    _load_target(name, model, cfg.device, cfg.dtype, cfg.target_options)
                )
        return adapters[0] if len(adapters) == 1 else adapters

    with _progress(err, cfg.loop.steps, disable=json_out) as on_event:
        if single:  # the unit of work alone: no manifest
            loaded = read(item.input, max_pixels)  # the one read of the input
            adapter = load()
            on_event(BatchEvent("start", 0, 1, item.input))
            res = protect_one(
                item, cfg, adapter, loaded, keep_metadata=keep_metadata,
                callback=lambda ev: on_event(BatchEvent("step", 0, 1, item.input, ev.step, ev.steps, ev.loss)),
            ).result  # fmt: skip
            result = BatchResult(items=[res], manifest=None, config_hash=res.config_hash or "")
            on_event(BatchEvent("done", 0, 1, item.input, result=res))
        else:
            result = run_batch(
                inputs,
                out,
                cfg,
                load,
                callback=on_event,
                keep_metadata=keep_metadata,
                max_pixels=max_pixels,
                batch_size=batch_size,
                follow_symlinks=follow_symlinks,
            )
    _ignored(result, json_out)
    if len(result.items) == 1 and result.items[0].status == "failed":
        error = result.items[0].error or "the input could not be protected"
        if result.nothing_read:
            raise InputError(error)  # one line, exit 2, nothing written
        typer.echo(f"error: {_one_line(error)}", err=True)
    return _summary(result, cfg, json_out, loaded.info["format"] if single else None)
