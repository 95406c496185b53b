"""`stillguard convert`: an official DynamiCrafter ``model.ckpt`` -> ``.safetensors``, safely.

The checkpoint is read with torch's weights-only unpickler (never full unpickling); see
:mod:`stillguard.adapters.dynamicrafter.convert`. The output loads with
``--target dynamicrafter --model OUT.safetensors``.
"""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from ._common import DEBUG, JSON, _emit_json, _errors, app


@app.command()
def convert(
    checkpoint: Annotated[Path, typer.Argument(help="The official model.ckpt (a pickle).")],
    output: Annotated[Path, typer.Argument(help="Where to write the .safetensors file.")],
    force: Annotated[bool, typer.Option("--force", help="Replace an existing output.")] = False,
    no_check: Annotated[
        bool, typer.Option("--no-check", help="Skip the key check against the official model.")
    ] = False,
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:
    """Convert a DynamiCrafter checkpoint to safetensors (weights-only read) and say what was kept."""
    with _errors(debug):
        from ..adapters import convert_dynamicrafter as run

        report = run(checkpoint, output, overwrite=force, check=not no_check)
        if json_out:
            _emit_json(report)
            return
        typer.echo(f"wrote {report['output']}: {report['tensors']} tensors kept")
        for prefix, n in sorted(report["by_prefix"].items()):
            typer.echo(f"  {prefix}: {n['tensors']} tensors, {n['values']:,} values")
        typer.echo(f"  dtypes: {report['dtypes']}")
        if report["dropped_non_tensors"]:
            typer.echo(f"  dropped {report['dropped_non_tensors']} non-tensor entries")
        if report["model"]:
            check = report.get("official_check")
            if check is None:
                typer.echo(f"  looks like DynamiCrafter {report['model']} (not checked)")
            elif not any(check.values()):
                typer.echo(
                    f"  matches the official DynamiCrafter {report['model']} keys and shapes"
                )
            else:
                typer.echo(f"  differs from the official DynamiCrafter {report['model']}: {check}")
        else:
            typer.echo(
                "  not recognised as a DynamiCrafter checkpoint (no model.diffusion_model.*)"
            )
