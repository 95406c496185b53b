"""`stillguard verify` and `stillguard demo`: generate clean vs protected videos and measure them."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from ._common import (
    DEBUG,
    JSON,
    _emit_json,
    _errors,
    _load_target,
    _progress,
    _stderr,
    _warn_demo_model,
    app,
    check_model_available,
)


# ----------------------------------------------------------------------------- verify
@app.command()
def verify(
    original: Annotated[Path, typer.Argument(help="The original photo.", readable=False)],
    protected: Annotated[Path, typer.Argument(help="The protected PNG.", readable=False)],
    target: Annotated[str, typer.Option(help="Target model family.")] = "cogvideox-i2v",
    model: Annotated[
        str | None,
        typer.Option(help="Hub id, local folder, 'toy' or 'tiny' [default: the real checkpoint]."),
    ] = None,
    seeds: Annotated[str, typer.Option(help="Generation seeds, comma-separated.")] = "0,1",
    transforms: Annotated[
        str | None,
        typer.Option(help="Purifications, comma-separated (e.g. identity,jpeg:75) [default set]."),
    ] = None,
    eps: Annotated[
        str | None, typer.Option(help="Budget of the noise baseline [sidecar, else 8/255].")
    ] = None,
    report: Annotated[
        Path | None, typer.Option(help="Write an HTML report into this folder.", readable=False)
    ] = None,
    device: Annotated[str, typer.Option(help="Torch device.")] = "cpu",
    dtype: Annotated[str, typer.Option(help="Torch dtype.")] = "float32",
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:
    """Generate clean vs protected videos with the same seeds (also after purifications) and compare."""
    with _errors(debug, json_out):
        _verify(**locals())  # the parameters above, by name


def _verify(
    original: Path, protected: Path, target: str, model: str | None, seeds: str,
    transforms: str | None, eps: str | None, report: Path | None, device: str, dtype: str,
    json_out: bool, debug: bool,
) -> None:  # fmt: skip
    from ..app.lossy import resave_note
    from ..app.models import check_device, default_model
    from ..app.outputs import check_writable
    from ..bounds import check
    from ..errors import InputError
    from ..formats import is_lossy
    from ..images import load_image
    from ..measure.evaluate import evaluate
    from ..names import shown_name
    from ..settings import parse_eps

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(
            f"--seeds {seeds!r}: give integers separated by commas, e.g. 0,1"
        ) from None
    check("seed_count", len(seed_list), "--seeds: the number of seeds")
    for s in seed_list:
        check("seed", s, "--seeds: seed")
    a, prot = load_image(original).tensor, load_image(protected)
    b = prot.tensor
    fmt = prot.info["format"]
    lossy = (
        f"{fmt} file, not the PNG stillguard wrote: {resave_note(fmt)}" if is_lossy(fmt) else None
    )
    if lossy and not json_out:
        _stderr().print(
            f"warning: {shown_name(protected)} is a {lossy}", markup=False, style="yellow"
        )
    if a.shape != b.shape:
        raise InputError(
            f"{shown_name(original)} is {a.shape[-1]}x{a.shape[-2]} but {shown_name(protected)} is "
            f"{b.shape[-1]}x{b.shape[-2]}; "
            "pass the original the protected image was made from"
        )
    budget = parse_eps(eps) if eps is not None else _sidecar_eps(protected)
    check_device(device, dtype)  # the same device/dtype rules as protect, before any work
    if report is not None:
        check_writable(report)  # before any video is generated
    model = model or default_model(target)
    check_model_available(model)
    _warn_demo_model(model)
    err = _stderr()
    with err.status(f"loading {target} ({model}) ..."):
        adapter = _load_target(target, model, device, dtype, {})
    kwargs: dict[str, Any] = {"seeds": seed_list, "eps": budget}
    if transforms:
        kwargs["transforms"] = [t.strip() for t in transforms.split(",") if t.strip()]
    from rich.progress import Progress

    with Progress(console=err, disable=json_out or not err.is_terminal, transient=True) as prog:
        task = prog.add_task("generating videos", total=None)
        kwargs["callback"] = lambda ev: prog.update(task, completed=ev["done"], total=ev["total"])
        rep = evaluate(a, b, adapter, **kwargs)
    written = None
    if report is not None:
        from ..measure.report import write_report

        written = write_report(rep, report)
    if json_out:
        data = rep.to_dict()
        data["report_path"] = str(written) if written else None
        data["lossy_protected"] = lossy  # None unless the protected file is JPEG, WebP, ...
        _emit_json(data)
    else:
        typer.echo(rep.table())
        if written:
            typer.echo(f"report: {shown_name(written)}")


def _sidecar_eps(protected: Path) -> float:
    """eps recorded in the protected PNG's sidecar, else 8/255."""
    try:
        data = json.loads(protected.with_suffix(".json").read_text())
        return float((data.get("protect") or data.get("config"))["eps"])
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return 8 / 255


# ----------------------------------------------------------------------------- demo
@app.command()
def demo(
    out: Annotated[Path, typer.Option(help="Output folder.", readable=False)] = Path(
        "stillguard-demo"
    ),
    steps: Annotated[int | None, typer.Option(help="PGD steps [demo preset].")] = None,
    seed: Annotated[int, typer.Option(help="Protection seed.")] = 0,
    model: Annotated[
        str, typer.Option(help="'toy' (shipped weights) or 'tiny' (random, plumbing only).")
    ] = "toy",
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:
    """Protect the bundled sample photo against the shipped toy model and measure the result."""
    with _errors(debug, json_out):
        from ..app.demo import check_demo, run_demo
        from ..bounds import check_all
        from ..names import shown_name

        check_all({"--steps": ("steps", steps), "--seed": ("seed", seed)})

        check_demo(out, steps=steps, seed=seed, model=model)  # before the warning and any work
        err = _stderr()
        _warn_demo_model(model)
        with _progress(err, steps or 0, disable=json_out) as on_event:
            from ..app.run import BatchEvent

            name = Path("sample.png")
            on_event(BatchEvent("start", 0, 1, name))
            res = run_demo(
                out, steps=steps, seed=seed, model=model,
                callback=lambda ev: on_event(BatchEvent("step", 0, 1, name, ev.step, ev.steps, ev.loss)),
                stage=lambda msg: None if json_out else err.print(msg, markup=False),
            )  # fmt: skip
        if json_out:
            _emit_json({"out_dir": res.out_dir, "protected": res.protected_path, "report": res.report_path,
                        "verdicts": res.report.verdicts})  # fmt: skip
        else:
            typer.echo(res.table)
            typer.echo(f"protected image: {shown_name(res.protected_path)}")
            typer.echo(f"report: {shown_name(res.report_path)}")
