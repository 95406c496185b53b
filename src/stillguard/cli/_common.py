"""Shared plumbing of the command line: the typer app, error handling, logging, model checks."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import ModelError, StillguardError

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
DEMO_MODELS = ("tiny", "toy", "toy-wan")
DEMO_WARNING = (
    "warning: model {model!r} is a {kind} model: this output does NOT protect against real "
    "image-to-video models (use a real checkpoint: --model FOLDER_OR_HUB_ID)"
)


# ----------------------------------------------------------------------------- plumbing
def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _one_line(err: BaseException | str) -> str:
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
    if model in DEMO_MODELS:
        return
    if Path(model).expanduser().exists():
        from ..adapters._common import check_local_folder

        check_local_folder(Path(model).expanduser())  # no weights, or pickles only: say so now
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
    how = _weights_hint(model) or (
        f"download them (e.g. `huggingface-cli download {model} --local-dir DIR`) and pass "
        "--model DIR"
    )
    raise ModelError(
        f"the weights of {model} are not on this machine and stillguard does not download them: "
        f"{how}, or pass --model toy (or tiny) for a demo that does NOT protect against real models"
    )


def _weights_hint(model: str) -> str | None:
    """How to get ``model``'s weights, from the adapter whose real checkpoints include it.

    An adapter may set a class attribute ``weights_hint`` (e.g. DynamiCrafter: its official weights
    are a pickle to convert with ``stillguard convert``), where ``{model}`` stands for the hub id;
    ``None`` keeps the generic advice.
    """
    from ..adapters import ADAPTERS  # importing the package registers every adapter

    for name in ADAPTERS.names():
        cls = ADAPTERS.get(name)
        if model == cls.default_model or model in cls.real_models:
            hint = getattr(cls, "weights_hint", None)
            if hint:
                return str(hint).replace("{model}", model)
    return None


def _load_target(name: str, model: str, device: str, dtype: str, options: dict[str, Any]) -> Any:
    from ..adapters import load_adapter

    return load_adapter(name, model=model, device=device, dtype=dtype, **options)


def _warn_demo_model(model: str) -> None:
    if model in DEMO_MODELS:
        kind = "random-weight test" if model == "tiny" else "small demonstration"
        _stderr().print(DEMO_WARNING.format(model=model, kind=kind), style="bold yellow")


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
                if r.status == "failed" and ev.total == 1:
                    return  # the command prints the one error line itself
                if r.status == "failed":
                    msg = r.error if r.input in (r.error or "") else f"{r.input}: {r.error}"
                    console.print(f"failed  {msg}", markup=False, style="red")
                else:
                    word = "ok     " if r.status == "ok" else "skipped"
                    console.print(f"{word} {r.input} -> {r.output}", markup=False)

        yield on_event
