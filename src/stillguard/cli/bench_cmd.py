"""`stillguard bench`: protect photos with several methods against several targets, attack, measure."""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import DEBUG, JSON, _emit_json, _errors, _stderr, _warn_demo_model, app

METHODS = "vid-freeze,rollout-freeze,anti-i2v,noise"
ATTACKS = "none,jpeg75,resize,blur,noisy-upscale"


def _folder_option(kind: str, what: str) -> Any:
    return typer.Option(f"--{kind}", envvar=f"STILLGUARD_{kind.upper()}", metavar="DIR",
                        help=f"Local folder of the {what} (safetensors; never downloaded).")  # fmt: skip


@app.command()
def bench(
    out: Annotated[Path, typer.Option("-o", "--out", help="Output folder (resumable).", readable=False)],
    targets: Annotated[str, typer.Option(help="NAME[:MODEL],... e.g. cogvideox-i2v:toy,wan-i2v:toy-wan [the real checkpoint].")] = "cogvideox-i2v",
    methods: Annotated[str, typer.Option(help="NAME[:key=value...],... keys steps, eps, preset or a method option.")] = METHODS,
    photos: Annotated[str, typer.Option(help="A folder, or builtin[:N] (held-out set), faces, sample.")] = "builtin",
    attacks: Annotated[str, typer.Option(help="Purifications before generation: none, jpeg95, jpeg75, jpeg50, resize, blur, noise, bits, noisy-upscale, diffpure, or transform specs; separate with ; when a spec has commas.")] = ATTACKS,
    seeds: Annotated[str, typer.Option(help="Generation seeds, comma-separated.")] = "0",
    steps: Annotated[int | None, typer.Option(help="PGD steps of every method [its preset].")] = None,
    eps: Annotated[str | None, typer.Option(help="L-inf budget of every method, e.g. 8/255 [preset].")] = None,
    preset: Annotated[str, typer.Option(help="Preset the methods start from.")] = "default",
    device: Annotated[str, typer.Option(help="Torch device.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="Torch dtype.")] = "float32",
    gpu_memory: Annotated[str | None, typer.Option(help="Fit each target x method to a GPU of this size (24GiB, 80GB, auto).")] = None,
    frames: Annotated[int | None, typer.Option(help="Frames per generated video [the model's].")] = None,
    sampling_steps: Annotated[int | None, typer.Option(help="Sampler steps per video [the model's].")] = None,
    face_detector: Annotated[str, typer.Option(help="dlib face detector: hog or cnn.")] = "hog",
    face_upsample: Annotated[int, typer.Option(min=0, max=3, help="dlib's upsampling before detection.")] = 1,
    face_min_side: Annotated[int, typer.Option(min=0, help="Enlarge frames to this shorter side before detection (same for clean and protected) [0: no].")] = 0,
    clip: Annotated[str | None, _folder_option("clip", "CLIP image encoder")] = None,
    dino: Annotated[str | None, _folder_option("dino", "DINO encoder")] = None,
    lpips: Annotated[str | None, _folder_option("lpips", "LPIPS network")] = None,
    arcface: Annotated[str | None, _folder_option("arcface", "ArcFace IResNet")] = None,
    qalign: Annotated[str | None, _folder_option("qalign", "Q-Align-style LLaVA scorer")] = None,
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:  # fmt: skip
    """Protect each photo once per method x target, attack it, generate clean and protected videos
    with the same seeds, measure; write table.md/.csv/.json and report/index.html (resumable)."""
    with _errors(debug, json_out):
        from ..app.bench import (
            BenchSpec,
            load_photos,
            parse_attacks,
            parse_methods,
            parse_seeds,
            parse_targets,  # fmt: skip
            run_bench,
        )
        from ..errors import InputError

        if face_detector not in ("hog", "cnn"):
            raise InputError(f"--face-detector {face_detector!r}: use hog or cnn")
        spec = BenchSpec(
            targets=parse_targets(targets), methods=parse_methods(methods, steps, eps, preset),
            attacks=parse_attacks(attacks), seeds=parse_seeds(seeds), device=device, dtype=dtype,
            gpu_memory=gpu_memory, face_detector=face_detector, face_upsample=face_upsample,
            face_min_side=face_min_side, num_frames=frames, num_inference_steps=sampling_steps,
            encoders={k: v for k, v in dict(clip=clip, dino=dino, lpips=lpips, arcface=arcface,
                                            qalign=qalign).items() if v},
        )  # fmt: skip
        pics = load_photos(photos)
        for _, model in spec.targets:
            _warn_demo_model(model)
        from ..encoders import faces

        if faces.available() is not None:  # the face columns are left out, the rest runs
            _stderr().print(
                f"note: {faces.available()}; the face columns are left out", markup=False
            )
        command = _command(locals())
        with _bar(json_out) as events:
            result = run_bench(
                spec, pics, out, command=command or "stillguard bench", events=events
            )
        if json_out:
            _emit_json(result)
        else:
            typer.echo(Path(result["table"]).read_text())
            typer.echo(f"report: {result['report']}")


def _command(values: dict[str, Any]) -> str:
    """The command as given, in a canonical form: every option that differs from its default."""
    import inspect

    parts = ["stillguard", "bench", "-o", str(values["out"])]
    for name, p in inspect.signature(bench).parameters.items():
        v = values.get(name)
        if name in ("out", "json_out", "debug") or v is None or v == p.default:
            continue
        parts += [f"--{name.replace('_', '-')}", str(v)]
    return shlex.join(parts)


class _bar:
    """A rich progress bar over cells, with the current cell's PGD step (no bar when piped)."""

    def __init__(self, disable: bool) -> None:
        from rich.progress import (
            BarColumn,
            MofNCompleteColumn,
            Progress,
            TextColumn,
            TimeElapsedColumn,
        )

        console = _stderr()
        self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                 TimeElapsedColumn(), console=console, transient=True,
                                 disable=disable or not console.is_terminal)  # fmt: skip

    def __enter__(self) -> Any:
        self.progress.__enter__()
        task = self.progress.add_task("bench", total=None)

        def on(ev: dict) -> None:
            if ev["kind"] == "start":
                desc = f"{ev['target']} · {ev['method']} · {ev['photo']}"
                self.progress.update(
                    task, description=desc, total=ev["total"], completed=ev["done"]
                )
            elif ev["kind"] == "cell":
                self.progress.update(task, completed=ev["done"], total=ev["total"])
            elif ev["kind"] == "load":
                self.progress.update(task, description=f"loading {ev['target']} ...")

        return on

    def __exit__(self, *exc: Any) -> None:
        self.progress.__exit__(*exc)
