"""The ``stillguard`` command line: a thin front over the library (typer + rich).

Commands: ``protect``, ``verify``, ``demo``, ``list``, ``env``. Every user-facing error is one line
on stderr (``error: ...``) with exit code 2 (bad input, option, preset or model) or 1 (a failure
while running, or some inputs of a batch failed); ``--debug`` adds the traceback. Heavy imports
(torch, diffusers) happen inside the commands, so ``--help`` and usage errors stay fast.

Honest defaults: ``protect`` and ``verify`` target the real checkpoint of the target model; when its
weights are not on this machine the command fails before any work and says how to get them. The
tiny/toy models are accepted with a warning: protection computed on them does not carry over.
"""

from __future__ import annotations

import contextlib
import inspect
import json
import logging
import os
import platform
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from .errors import ModelError, StillguardError
from .io import DEFAULT_MAX_PIXELS

app = typer.Typer(
    name="stillguard",
    help="Protect photos against image-to-video diffusion models, and measure the protection.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
DEBUG = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
JSON = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only (stdout).")]
DEMO_MODELS = ("tiny", "toy")
DEMO_WARNING = (
    "warning: model {model!r} is a {kind} model: this output does NOT protect against real "
    "image-to-video models (use a real checkpoint: --model FOLDER_OR_HUB_ID)"
)


# ----------------------------------------------------------------------------- plumbing
def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _one_line(err: BaseException) -> str:
    return " ".join(str(err).split()) or type(err).__name__


class _DropToyWarning(logging.Filter):
    """The CLI prints its own warning about demo models once; drop the per-image log copy."""

    def filter(self, record: logging.LogRecord) -> bool:
        return "tiny/toy model only" not in str(record.msg)


def _setup_logging(debug: bool) -> None:
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(levelname)s: %(message)s"))
    handler.addFilter(_DropToyWarning())
    root = logging.getLogger("stillguard")
    for h in list(root.handlers):
        if getattr(h, "_stillguard_cli", False):
            root.removeHandler(h)
    handler._stillguard_cli = True  # type: ignore[attr-defined]
    root.addHandler(handler)
    root.setLevel(logging.DEBUG if debug else logging.WARNING)
    root.propagate = False


@contextlib.contextmanager
def _errors(debug: bool) -> Iterator[None]:
    """Turn exceptions into one ``error:`` line and an exit code (2 usage/input, 1 runtime)."""
    _setup_logging(debug)
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        raise typer.Exit(130) from None
    except Exception as e:  # noqa: BLE001 - the boundary: never a traceback unless --debug
        if debug:
            traceback.print_exc()
        if isinstance(e, StillguardError):
            msg, code = _one_line(e), 2
        elif isinstance(e, (OSError, MemoryError)):
            msg, code = f"{type(e).__name__}: {_one_line(e)}", 1
        else:
            msg = f"internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug and report it)"
            code = 1
        typer.echo(f"error: {msg}", err=True)
        raise typer.Exit(code) from None


def _emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=1, sort_keys=True, default=str))


def check_model_available(model: str) -> None:
    """Fail early (``ModelError``) when ``model`` is a hub id whose weights are not on this machine.

    stillguard never downloads checkpoints on its own. Local folders, ``tiny`` and ``toy`` pass
    (their own loader checks them).
    """
    if model in DEMO_MODELS or Path(model).expanduser().exists():
        return
    if model.count("/") != 1 or model.startswith((".", "/", "~")):
        return  # not a hub id: the adapter's loader explains what is wrong with the path
    try:
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(model, "model_index.json")
    except Exception:  # noqa: BLE001 - no hub client or a bad cache: treat as not cached
        cached = None
    if isinstance(cached, str):
        return
    raise ModelError(
        f"the weights of {model} are not on this machine and stillguard does not download them: "
        f"download them (e.g. `huggingface-cli download {model} --local-dir DIR`) and pass "
        "--model DIR, or pass --model toy (or tiny) for a demo that does NOT protect against real models"
    )


def _load_target(name: str, model: str, device: str, dtype: str, options: dict[str, Any]) -> Any:
    from .adapters import load_adapter

    return load_adapter(name, model=model, device=device, dtype=dtype, **options)


def _warn_demo_model(model: str) -> None:
    if model in DEMO_MODELS:
        kind = "random-weight test" if model == "tiny" else "small demonstration"
        _stderr().print(DEMO_WARNING.format(model=model, kind=kind), style="bold yellow")


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
    from . import batch
    from .config import build_config
    from .errors import InputError
    from .io import load_image

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


@contextlib.contextmanager
def _progress(console: Any, steps: int, disable: bool) -> Iterator[Any]:
    """A rich progress bar per image (loss shown); yields the batch event handler."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
               TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn())  # fmt: skip
    live = not disable and console.is_terminal  # no bar (and no stray blank lines) when piped
    with Progress(*columns, console=console, disable=not live, transient=True) as prog:
        tasks: dict[int, Any] = {}

        def on_event(ev: Any) -> None:
            if ev.kind == "start":
                desc = f"[{ev.index + 1}/{ev.total}] {ev.input.name}"
                tasks[ev.index] = prog.add_task(desc, total=steps, loss="-")
            elif ev.kind == "step" and ev.index in tasks:
                prog.update(
                    tasks[ev.index], completed=ev.step, total=ev.steps, loss=f"{ev.loss:.4g}"
                )
            elif ev.kind == "done" and ev.index in tasks:
                prog.remove_task(tasks.pop(ev.index))
            if ev.kind == "done" and not disable:
                r = ev.result
                if r.status == "failed":
                    msg = r.error if r.input in (r.error or "") else f"{r.input}: {r.error}"
                    console.print(f"failed  {msg}", markup=False, style="red")
                else:
                    word = "ok     " if r.status == "ok" else "skipped"
                    console.print(f"{word} {r.input} -> {r.output}", markup=False)

        yield on_event


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
    with _errors(debug):
        _verify(**locals())  # the parameters above, by name


def _verify(
    original: Path, protected: Path, target: str, model: str | None, seeds: str,
    transforms: str | None, eps: str | None, report: Path | None, device: str, dtype: str,
    json_out: bool, debug: bool,
) -> None:  # fmt: skip
    from .config import default_model, parse_eps
    from .errors import InputError
    from .evaluate import verify as run_verify
    from .io import load_image

    try:
        seed_list = [int(s) for s in seeds.split(",") if s.strip()]
    except ValueError:
        raise InputError(
            f"--seeds {seeds!r}: give integers separated by commas, e.g. 0,1"
        ) from None
    a, b = load_image(original).tensor, load_image(protected).tensor
    if a.shape != b.shape:
        raise InputError(
            f"{original} is {a.shape[-1]}x{a.shape[-2]} but {protected} is {b.shape[-1]}x{b.shape[-2]}; "
            "pass the original the protected image was made from"
        )
    budget = parse_eps(eps) if eps is not None else _sidecar_eps(protected)
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
        rep = run_verify(adapter, a, b, **kwargs)
    written = None
    if report is not None:
        from .report import write_report

        written = write_report(rep, report)
    if json_out:
        data = rep.to_dict()
        data["report_path"] = str(written) if written else None
        _emit_json(data)
    else:
        typer.echo(rep.table())
        if written:
            typer.echo(f"report: {written}")


def _sidecar_eps(protected: Path) -> float:
    """eps recorded in the protected PNG's sidecar (ours or ``Protected.save``'s), else 8/255."""
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
    with _errors(debug):
        from .demo import run_demo

        err = _stderr()
        _warn_demo_model(model)
        with _progress(err, steps or 0, disable=json_out) as on_event:
            from .batch import BatchEvent

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
            typer.echo(f"protected image: {res.protected_path}\nreport: {res.report_path}")


# ----------------------------------------------------------------------------- list / env
KINDS = {
    "methods": "METHODS",
    "targets": "ADAPTERS",
    "spaces": "SPACES",
    "transforms": "TRANSFORMS",
}


def _first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj) or inspect.getdoc(sys.modules.get(obj.__module__)) or ""
    return doc.strip().splitlines()[0] if doc.strip() else ""


def _options(kind: str, registry: Any, name: str) -> list[tuple[str, str, Any]]:
    opts = registry.options(name)
    if kind == "targets" and not opts:  # adapters are configured by from_pretrained keywords
        sig = inspect.signature(registry.get(name).from_pretrained)
        opts = [(p.name, str(p.annotation), p.default) for p in sig.parameters.values()
                if p.kind is p.KEYWORD_ONLY and p.name not in ("device", "dtype")]  # fmt: skip
    return opts


def list_plugins(kind: str | None = None) -> dict[str, list[dict[str, Any]]]:
    """Registered plug-ins (and presets) with their options and defaults, by kind."""
    from . import plugins
    from .config import DEFAULT_MODELS, list_presets, load_preset

    aliases = {k[:-1]: k for k in [*KINDS, "presets"]} | {
        "adapters": "targets",
        "target": "targets",
    }
    kinds = [*KINDS, "presets"] if kind is None else [aliases.get(kind, kind)]
    out: dict[str, list[dict[str, Any]]] = {}
    for k in kinds:
        if k == "presets":
            out[k] = []
            for name in list_presets():
                try:
                    cfg = load_preset(name)
                except StillguardError as e:  # show the others; say what is wrong with this one
                    out[k].append(
                        {"name": name, "doc": f"INVALID: {_one_line(e)}", "options": None}
                    )
                    continue
                out[k].append({"name": name, "doc": cfg.description, "options": cfg.to_dict()})
            continue
        if k not in KINDS:
            from .registry import close_matches

            raise StillguardError(
                f"unknown kind {kind!r}: {close_matches(str(kind), [*KINDS, 'presets'])}"
            )
        reg = getattr(plugins, KINDS[k])
        out[k] = []
        for name in reg.names():
            entry = {"name": name, "doc": _first_line(reg.get(name)),
                     "options": [{"name": o, "type": t, "default": d} for o, t, d in _options(k, reg, name)]}  # fmt: skip
            if k == "targets":
                entry["default_model"] = DEFAULT_MODELS.get(name)
            out[k].append(entry)
    return out


@app.command(name="list")
def list_(
    kind: Annotated[
        str | None, typer.Argument(help="methods, targets, spaces, transforms or presets [all].")
    ] = None,
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:
    """List plug-ins and presets with their options and defaults."""
    with _errors(debug):
        data = list_plugins(kind)
        if json_out:
            _emit_json(data)
            return
        for k, entries in data.items():
            typer.echo(f"{k}:")
            for e in entries:
                typer.echo(f"  {e['name']:<16} {e['doc']}")
                if k == "presets":
                    if p := e["options"]:
                        eps = p["protect"]["eps"]
                        eps_text = f"{eps * 255:g}/255" if eps else "space default"
                        typer.echo(f"      method={p['method']['name']} eps={eps_text} "
                                   f"steps={p['protect']['steps']} model={p['target']['model']}")  # fmt: skip
                    continue
                if e.get("default_model"):
                    typer.echo(f"      default model: {e['default_model']}")
                for o in e["options"]:
                    typer.echo(f"      {o['name']}: {o['type']} = {o['default']!r}")


def environment() -> dict[str, Any]:
    """Versions, threads, accelerators and paths, for bug reports."""
    import torch

    from .versions import package_versions

    pkgs = ("stillguard", "torch", "diffusers", "transformers", "accelerate", "safetensors",
            "huggingface_hub", "kornia", "numpy", "pillow", "opencv-python-headless", "opencv-python",
            "scikit-image", "imageio", "typer", "rich", "gradio")  # fmt: skip
    versions = package_versions(pkgs, skip_missing=True)
    cuda = torch.cuda.is_available()
    here = Path(__file__).resolve().parent
    return {
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "versions": versions,
        "torch_threads": torch.get_num_threads(),
        "omp_num_threads": os.environ.get("OMP_NUM_THREADS"),
        "cuda_available": cuda,
        "cuda_version": torch.version.cuda,
        "cuda_devices": [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
        if cuda
        else [],
        "mps_available": bool(
            getattr(torch.backends, "mps", None) and torch.backends.mps.is_available()
        ),
        "package_dir": str(here),
        "toy_model_installed": (here / "toy" / "weights" / "model_index.json").is_file(),
    }


@app.command()
def env(json_out: JSON = False, debug: DEBUG = False) -> None:
    """Print versions, torch threads, CUDA availability and the package folder (for bug reports)."""
    with _errors(debug):
        data = environment()
        if json_out:
            _emit_json(data)
            return
        for key, value in data.items():
            if isinstance(value, dict):
                typer.echo(f"{key}:")
                for k, v in value.items():
                    typer.echo(f"  {k}: {v}")
            else:
                typer.echo(f"{key}: {value}")


def main() -> None:
    """Console-script entry point."""
    app(prog_name="stillguard")


if __name__ == "__main__":
    main()
