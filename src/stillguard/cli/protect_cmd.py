"""`stillguard protect`: one image, several, or folders (batch with manifest and resume)."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import StillguardError
from ..io import DEFAULT_MAX_PIXELS
from ._common import (
    DEBUG,
    DEMO_MODELS,
    JSON,
    _emit_json,
    _errors,
    _load_target,
    _one_line,
    _progress,
    _stderr,
    _warn_demo_model,
    app,
    check_model_available,
)


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
        str | None, typer.Option(help="Target model family [preset: cogvideox-i2v].")
    ] = None,
    model: Annotated[
        str | None,
        typer.Option(
            help="Hub id, local folder, 'toy' or 'tiny' [default: the target's real checkpoint]."
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
    json_out: JSON = False,
    keep_metadata: Annotated[
        bool, typer.Option(help="Copy the input's EXIF into the PNG (default: strip).")
    ] = False,
    max_pixels: Annotated[
        int, typer.Option(help="Refuse larger images (decompression-bomb guard).")
    ] = DEFAULT_MAX_PIXELS,
    debug: DEBUG = False,
) -> None:
    """Protect images: writes NAME.protected.png + NAME.protected.json (+ manifest.jsonl for folders)."""
    with _errors(debug):
        code = _protect(
            inputs, out, dict(method=method, target=target, model=model, eps=eps, steps=steps,
                              seed=seed, device=device, dtype=dtype),
            preset, set_ or [], json_out, keep_metadata, max_pixels,
        )  # fmt: skip
    raise typer.Exit(code)


def _protect(
    inputs: list[Path],
    out: Path,
    flags: dict[str, Any],
    preset: str,
    sets: list[str],
    json_out: bool,
    keep_metadata: bool,
    max_pixels: int,
) -> int:
    from .. import batch
    from ..config import build_config
    from ..errors import InputError
    from ..io import load_image

    cfg = build_config(preset, sets=sets, **flags)
    single = len(inputs) == 1 and not inputs[0].is_dir() and out.suffix.lower() == ".png"
    if out.suffix.lower() == ".png" and not single:
        raise InputError(
            f"-o {out} is a .png file but the inputs are several or a folder; give a folder"
        )
    if single:
        items = [batch.BatchItem(inputs[0], out, out.with_suffix(".json"))]
        for path in (items[0].output, items[0].sidecar):
            if os.path.realpath(path) == os.path.realpath(inputs[0]):
                raise InputError(f"{path}: the output would overwrite the input; choose another -o")
    else:
        items = batch.plan(inputs, out)
    batch.check_writable(out.parent if single else out)
    err = _stderr()
    bad: dict[Path, StillguardError] = {}
    for item in items:  # fail fast, before loading a model: decode every input once
        try:
            load_image(item.input, max_pixels=max_pixels)
        except StillguardError as e:
            bad[item.input] = e
    if len(bad) == len(items):  # nothing to do: report and write nothing
        for e in bad.values():
            typer.echo(f"error: {_one_line(e)}", err=True)
        if json_out:
            _emit_json(
                {"ok": 0, "failed": len(bad), "errors": [_one_line(e) for e in bad.values()]}
            )
        return 2
    todo = items if single else batch.pending(items, out, batch.run_hash(cfg, keep_metadata))

    def load() -> Any:
        return _load_target(cfg.target_name, cfg.model, cfg.device, cfg.dtype, cfg.target_options)

    adapter: Any = load  # loaded lazily if nothing decodable is pending (a resumed, finished run)
    if any(it.input not in bad for it in todo):
        check_model_available(cfg.model)
        _warn_demo_model(cfg.model)
        with err.status(f"loading {cfg.target_name} ({cfg.model}) ..."):
            adapter = load()  # before anything is written: a model that cannot load stops here
    with _progress(err, cfg.steps, disable=json_out) as on_event:
        if single:
            on_event(batch.BatchEvent("start", 0, 1, items[0].input))
            res = batch.protect_file(
                items[0], cfg, adapter, keep_metadata=keep_metadata, max_pixels=max_pixels,
                callback=lambda ev: on_event(batch.BatchEvent("step", 0, 1, items[0].input, ev.step, ev.steps, ev.loss)),
            )  # fmt: skip
            result = batch.BatchResult(
                items=[res], manifest=None, config_hash=res.config_hash or ""
            )
            on_event(batch.BatchEvent("done", 0, 1, items[0].input, result=res))
        else:
            result = batch.run_batch(
                inputs,
                out,
                cfg,
                adapter,
                callback=on_event,
                keep_metadata=keep_metadata,
                max_pixels=max_pixels,
            )
    summary = result.to_dict()
    summary["real_model"] = cfg.model not in DEMO_MODELS
    if json_out:
        _emit_json(summary)
    else:
        tail = f", manifest {result.manifest}" if result.manifest else ""
        typer.echo(
            f"{summary['ok']} protected, {summary['skipped']} already done, {summary['failed']} failed{tail}"
        )
    return result.exit_code
