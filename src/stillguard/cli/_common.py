"""Shared plumbing of the command line: the typer app, error handling, logging, model checks."""

from __future__ import annotations

import contextlib
import json
import logging
import sys
import traceback
from collections.abc import Iterator
from typing import Annotated, Any

import typer

from ..app.models import DEMO_MODELS, check_model_available  # noqa: F401  (re-exported)
from ..errors import StillguardError
from ..names import one_line, shown_name


class _JsonErrors(typer.core.TyperGroup):
    """Usage errors (a bad option value, an unknown option) as one JSON object too, with --json."""

    def invoke(self, ctx: Any) -> Any:
        raw = [*getattr(ctx, "_protected_args", []), *ctx.args]  # before click consumes them
        try:
            return super().invoke(ctx)
        except Exception as e:  # click's usage errors (typer vendors its own click: duck-typed)
            usage = callable(getattr(e, "format_message", None))
            if usage and "--json" in raw and isinstance(getattr(e, "exit_code", None), int):
                _emit_json({"error": _one_line(e.format_message()), "exit_code": e.exit_code})
            raise


app = typer.Typer(
    name="stillguard",
    cls=_JsonErrors,
    help="Protect photos against image-to-video diffusion models, and measure the protection.",
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
)
DEBUG = Annotated[bool, typer.Option("--debug", help="Show tracebacks and debug logs.")]
JSON = Annotated[bool, typer.Option("--json", help="Print machine-readable JSON only (stdout).")]
DEMO_WARNING = (
    "warning: model {model!r} is a {kind} model: this output does NOT protect against real "
    "image-to-video models (use a real checkpoint: --model FOLDER_OR_HUB_ID)"
)


# ----------------------------------------------------------------------------- plumbing
def _stderr() -> Any:
    from rich.console import Console

    return Console(stderr=True, highlight=False, soft_wrap=True)


def _one_line(err: BaseException | str) -> str:
    return one_line(err) or type(err).__name__


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
def _errors(debug: bool, json_out: bool = False) -> Iterator[None]:
    """Turn exceptions into one ``error:`` line and an exit code (2 usage/input, 1 runtime).

    With ``json_out`` the same message also goes to stdout as one JSON object
    ``{"error": ..., "exit_code": ...}``, so a script always gets JSON.
    """
    _setup_logging(debug)
    try:
        yield
    except (typer.Exit, typer.Abort):
        raise
    except KeyboardInterrupt:
        typer.echo("error: interrupted", err=True)
        if json_out:
            _emit_json({"error": "interrupted", "exit_code": 130})
        raise typer.Exit(130) from None
    except Exception as e:  # noqa: BLE001 - the boundary: never a traceback unless --debug
        if debug:
            traceback.print_exc()
        files = sys.modules.get(f"{__package__.rsplit('.', 1)[0]}.files")  # loaded if it raised
        if files is not None and isinstance(e, files.WriteError):  # a full disk: runtime, not input
            msg, code = _one_line(e), 1
        elif isinstance(e, StillguardError):
            msg, code = _one_line(e), 2
        elif isinstance(e, (OSError, MemoryError)):
            msg, code = f"{type(e).__name__}: {_one_line(e)}", 1
        else:
            msg = f"internal error: {type(e).__name__}: {_one_line(e)} (rerun with --debug and report it)"
            code = 1
        typer.echo(f"error: {msg}", err=True)
        if json_out:
            _emit_json({"error": msg, "exit_code": code})
        raise typer.Exit(code) from None


BATCH_SIZE = Annotated[
    str,
    typer.Option(
        "--batch-size",
        metavar="N",
        help="Protect up to N images of one size together, in one forward/backward pass of the "
        "model per step. Each image gets what it gets alone (same seed, own loss and step; only "
        "float rounding differs, a few pixels by one 8-bit level), so a run resumed with another "
        "N skips finished images. Helps on GPUs; on a few CPU cores it may not. Methods that "
        "cannot batch (sampled attention, anti-i2v, i2vguard) run one at a time; "
        "--gpu-memory plans the whole batch.",
    ),
]


def _batch_size(text: str) -> int:
    """``--batch-size`` as a whole number in its range (one ``error:`` line otherwise)."""
    from ..bounds import check

    try:
        value: Any = int(str(text).strip())
    except ValueError:
        value = str(text)
    return int(check("batch_size", value, "--batch-size"))


def _emit_json(obj: Any) -> None:
    typer.echo(json.dumps(obj, indent=1, sort_keys=True, default=str))


def _ignored(result: Any, json_out: bool) -> None:
    """List the files a bulk run left alone (links not followed, not image names; in ``--json``
    they are keys)."""
    from ..app.run.inputs import OUTSIDE

    err = _stderr()
    for link in result.skipped_links if not json_out else []:
        hint = " (use --follow-symlinks to follow it)" if link["reason"] == OUTSIDE else ""
        why = link["reason"] + hint
        err.print(f"skipped {shown_name(link['path'])}: {why}", markup=False, style="yellow")
    for path in result.ignored if not json_out else []:
        err.print(
            f"ignored {shown_name(path)} (not an image file name)", markup=False, style="yellow"
        )


def _summary(result: Any, cfg: Any, json_out: bool, single_format: str | None = None) -> int:
    """A bulk run's last words, whatever executor ran it: the lossy-input note (once per run), the
    JSON summary or the counts line; returns the exit code. ``single_format``: the format of a
    single input (a batch reads it from its items' sidecars)."""
    from ..app.lossy import lossy_format, resave_note

    lossy = lossy_format(result.items, single_format)
    if lossy and not json_out:
        _stderr().print(f"note: {resave_note(lossy)}", markup=False, style="yellow")
    summary = result.to_dict()
    summary["real_model"] = all(model not in DEMO_MODELS for _, model in cfg.targets())
    if json_out:
        _emit_json(summary)
    else:
        tail = f", manifest {shown_name(result.manifest)}" if result.manifest else ""
        typer.echo(
            f"{summary['ok']} protected, {summary['skipped']} already done, "
            f"{summary['failed']} failed{tail}"
        )
    return result.exit_code


def _load_target(name: str, model: str, device: str, dtype: str, options: dict[str, Any]) -> Any:
    from ..app.models import load_target

    return load_target(name, model, device, dtype, options)


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
                desc = f"[{ev.index + 1}/{ev.total}] {shown_name(ev.input.name)}"
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
                    console.print(f"failed  {failed_line(r)}", markup=False, style="red")
                else:
                    word = "ok     " if r.status == "ok" else "skipped"
                    line = f"{word} {shown_name(r.input)} -> {shown_name(r.output)}"
                    console.print(line, markup=False)

        yield on_event


def failed_line(r: Any) -> str:
    """A failed input's error on one line, its name (escaped) in front unless already there."""
    msg, name = one_line(r.error or "failed"), shown_name(r.input)
    return msg if name in msg else f"{name}: {msg}"
