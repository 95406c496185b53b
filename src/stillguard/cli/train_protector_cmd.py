"""`stillguard train-protector`: train a network that protects a photo in one forward pass.

The training itself is :func:`stillguard.toy.training.protector.train` (never imported at run
time); this command loads the targets, renders the progress and writes the protector file.
Re-running the same command with the same ``--out`` resumes from its checkpoint.
"""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import DEBUG, JSON, _emit_json, _errors, _load_target, _stderr, _warn_demo_model, app


@app.command(name="train-protector")
def train_protector(
    out: Annotated[
        Path,
        typer.Option("-o", "--out", help="Run folder (checkpoint, protector).", readable=False),
    ],
    target: Annotated[
        str, typer.Option(help="Target family, or several separated by commas (an ensemble).")
    ] = "cogvideox-i2v",
    model: Annotated[
        str, typer.Option(help="One model per target, separated by commas (folder, 'toy', ...).")
    ] = "toy",
    method: Annotated[
        str, typer.Option(help="The method whose loss is trained.")
    ] = "rollout-freeze",
    set_: Annotated[
        list[str] | None,
        typer.Option("--set", help="A method option: method.KEY=VALUE (repeatable)."),
    ] = None,
    eps: Annotated[str, typer.Option(help="L-inf budget, e.g. 8/255.")] = "8/255",
    steps: Annotated[int, typer.Option(help="Optimizer steps.")] = 1000,
    batch: Annotated[int, typer.Option(help="Photos per step.")] = 8,
    lr: Annotated[float, typer.Option(help="Peak learning rate (AdamW).")] = 1e-3,
    width: Annotated[int, typer.Option(help="Network channels at full resolution.")] = 16,
    levels: Annotated[int, typer.Option(help="Network stride-2 levels.")] = 3,
    eot: Annotated[
        list[str] | None, typer.Option(help="EOT transform, e.g. jpeg:75 (repeatable).")
    ] = None,
    photos: Annotated[
        Path | None,
        typer.Option(
            help="Folder of training photos [default: the toy's synthetic scenes].", readable=False
        ),  # fmt: skip
    ] = None,
    synthetic: Annotated[
        float | None,
        typer.Option(
            help="Share of synthetic scenes among the draws [1 without --photos, else 0]."
        ),
    ] = None,
    weights: Annotated[
        str | None,
        typer.Option(help="An ensemble's member weights, e.g. 3,1 [equal]."),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the network, the data and every draw.")] = 0,
    device: Annotated[str, typer.Option(help="cpu, cuda, ...")] = "cpu",
    dtype: Annotated[str, typer.Option(help="Target dtype.")] = "float32",
    threads: Annotated[int | None, typer.Option(help="torch threads on the CPU.")] = None,
    checkpoint_minutes: Annotated[float, typer.Option(help="Minutes between checkpoints.")] = 5.0,
    gpu_memory: Annotated[
        str | None,
        typer.Option(
            help="Plan one step (protector + target forward/backward) against this size "
            "first, e.g. 80GiB; stop if it does not fit."
        ),  # fmt: skip
    ] = None,
    export: Annotated[
        Path | None, typer.Option(help="Also copy the protector to this .safetensors file.")
    ] = None,
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:
    """Train a protector (a small network: photo -> perturbation) against one or several targets."""
    with _errors(debug, json_out):
        summary = _train(
            out, target, model, method, set_ or [], dict(eps=eps, steps=steps, batch=batch, lr=lr,
            width=width, levels=levels, eot=tuple(eot or ()), seed=seed,
            weights=_weights(weights)), photos, synthetic,
            device, dtype, threads, checkpoint_minutes, gpu_memory, export, json_out,
        )  # fmt: skip
        if json_out:
            _emit_json(summary)
        else:
            typer.echo(f"protector written to {summary['protector']}")


def _weights(text: str | None) -> tuple[float, ...]:
    from ..errors import InputError

    if not text:
        return ()
    try:
        out = tuple(float(w) for w in text.split(","))
    except ValueError:
        raise InputError(
            f"--weights {text!r}: give numbers separated by commas, e.g. 3,1"
        ) from None
    if any(not w > 0 for w in out):
        raise InputError(f"--weights {text!r}: every weight must be positive")
    return out


def _train(
    out: Path, target: str, model: str, method: str, sets: list[str], opts: dict[str, Any],
    photos: Path | None, synthetic: float | None, device: str, dtype: str, threads: int | None,
    checkpoint_minutes: float, gpu_memory: str | None, export: Path | None, json_out: bool,
) -> dict[str, Any]:  # fmt: skip
    import sys

    import torch

    from .. import plugins  # noqa: F401  (fills the registries)
    from ..app.inputs import check_writable
    from ..app.models import check_device, check_model_available
    from ..app.presets import parse_override
    from ..app.schema import plugin_options
    from ..errors import InputError
    from ..registry import ADAPTERS, METHODS
    from ..toy.training.protector import TrainSettings, train

    names = [n.strip() for n in target.split(",")]
    models = [m.strip() for m in model.split(",")]
    if len(names) != len(models):
        raise InputError(
            f"{len(names)} targets but {len(models)} models: give one model per target"
        )
    for n in names:
        ADAPTERS.get(n)
    raw: dict[str, Any] = {}
    for text in sets:
        keys, value = parse_override(text)
        if keys[0] != "method" or len(keys) != 2:
            raise InputError(
                f"--set {text!r}: train-protector takes method options only (method.KEY=VALUE)"
            )
        raw[keys[1]] = value
    METHODS.get(method)
    options = plugin_options(METHODS, "method", method, raw)
    if export is not None and export.suffix != ".safetensors":
        raise InputError(f"--export {export}: give a .safetensors file name")
    if threads is not None:
        if threads < 1:
            raise InputError(f"--threads must be >= 1, got {threads}")
        torch.set_num_threads(threads)
    check_device(device, dtype)
    share = synthetic if synthetic is not None else (0.0 if photos is not None else 1.0)
    settings = TrainSettings(method=method, method_options=options, photos=str(photos) if photos else None,
                             synthetic=share, **opts)  # fmt: skip
    check_writable(out)
    err = _stderr()
    if gpu_memory is not None:
        from ..protector import Architecture
        from ..toy.training.protector_plan import plan_training

        with err.status("planning one training step ..."):
            p = plan_training(list(zip(names, models, strict=True)), method, options,
                              Architecture(settings.width, settings.levels), settings.batch,
                              dtype=dtype, gpu_memory=gpu_memory)  # fmt: skip
        if not p["fits"]:
            raise InputError(f"one training step needs {p['need']} (planned), more than "
                             f"--gpu-memory {gpu_memory}: lower --batch or use a larger GPU")  # fmt: skip
        if not json_out:
            typer.echo(f"planned: one step needs {p['need']}, fits {gpu_memory}", err=True)
    for m in models:
        check_model_available(m)
    adapters = []
    for n, m in zip(names, models, strict=True):
        _warn_demo_model(m)
        with err.status(f"loading {n} ({m}) ..."):
            adapters.append(_load_target(n, m, device, dtype, {}))
    record = {"command": "stillguard train-protector " + " ".join(sys.argv[2:])}
    with _bar(err, settings.steps, disable=json_out) as on_event:
        prot = train(adapters if len(adapters) > 1 else adapters[0], settings, out,
                     callback=on_event, checkpoint_minutes=checkpoint_minutes, record=record)  # fmt: skip
    path = out / "protector.safetensors"
    if export is not None:
        export.parent.mkdir(parents=True, exist_ok=True)
        tmp = export.with_name(export.name + ".tmp")
        shutil.copyfile(path, tmp)
        tmp.replace(export)
    from ..files import sha256_file

    t = prot.training
    return {"protector": str(export or path), "run": str(out), "sha256": sha256_file(path),
            "steps": t["steps"], "seconds": t["seconds"], "params": t["params"],
            "train_loss_first_50": t["train_loss_first_50"], "train_loss_last_50": t["train_loss_last_50"],
            "validation": t["validation"], "targets": t["targets"]}  # fmt: skip


class _bar:
    """A rich progress bar over the training steps (loss and validation shown)."""

    def __init__(self, console: Any, steps: int, disable: bool) -> None:
        self.console, self.steps, self.disable = console, steps, disable

    def __enter__(self) -> Any:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeRemainingColumn,
        )

        self.progress = Progress(TextColumn("training"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("loss {task.fields[loss]}"), TimeRemainingColumn(),
                                 console=self.console, disable=self.disable)  # fmt: skip
        self.progress.__enter__()
        self.task = self.progress.add_task("train", total=self.steps, loss="-")

        def on_event(ev: Any) -> None:
            self.progress.update(self.task, completed=ev.step, loss=f"{ev.loss:.4f}")
            if ev.validation and not self.disable:
                vals = ", ".join(f"{k} {v:.4f}" for k, v in ev.validation.items())
                self.progress.console.print(f"step {ev.step}: validation {vals}", markup=False)

        return on_event

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
