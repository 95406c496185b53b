"""`stillguard list` and `stillguard env`: plug-ins with their options (from the dataclasses), versions."""

from __future__ import annotations

import inspect
import os
import platform
import sys
from pathlib import Path
from typing import Annotated, Any

import typer

from ..errors import StillguardError
from ._common import DEBUG, JSON, _emit_json, _errors, _one_line, app

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
    from .. import plugins
    from ..app.config import load_preset
    from ..app.presets import list_presets

    aliases = {k[:-1]: k for k in [*KINDS, "presets"]} | {
        "adapters": "targets",
        "target": "targets",
    }
    aliases["attack"] = "attacks"
    kinds = [*KINDS, "attacks", "presets"] if kind is None else [aliases.get(kind, kind)]
    out: dict[str, list[dict[str, Any]]] = {}
    for k in kinds:
        if k == "attacks":  # purification short names (bench --attacks): name -> transform spec
            from ..transforms import ATTACKS

            out[k] = [{"name": n, "doc": f"= {spec}", "options": []} for n, spec in ATTACKS.items()]
            continue
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
            from ..registry import close_matches

            raise StillguardError(
                f"unknown kind {kind!r}: {close_matches(str(kind), [*KINDS, 'attacks', 'presets'])}"
            )
        reg = getattr(plugins, KINDS[k])
        out[k] = []
        for name in reg.names():
            entry = {"name": name, "doc": _first_line(reg.get(name)),
                     "options": [{"name": o, "type": t, "default": d} for o, t, d in _options(k, reg, name)]}  # fmt: skip
            if k == "targets":
                entry["default_model"] = reg.get(name).default_model
            out[k].append(entry)
    return out


@app.command(name="list")
def list_(
    kind: Annotated[
        str | None,
        typer.Argument(help="methods, targets, spaces, transforms, attacks or presets [all]."),
    ] = None,
    json_out: JSON = False,
    debug: DEBUG = False,
) -> None:
    """List plug-ins and presets with their options and defaults."""
    with _errors(debug, json_out):
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

    from ..versions import package_versions

    pkgs = ("stillguard", "torch", "diffusers", "transformers", "accelerate", "safetensors",
            "huggingface_hub", "kornia", "numpy", "pillow", "pillow-heif", "opencv-python-headless", "opencv-python",
            "scikit-image", "imageio", "typer", "rich", "gradio")  # fmt: skip
    versions = package_versions(pkgs, skip_missing=True)
    from ..adapters import toy_folder

    cuda = torch.cuda.is_available()
    here = Path(__file__).resolve().parent.parent  # the stillguard package
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
        "toy_model_installed": (toy_folder() / "model_index.json").is_file(),
    }


@app.command()
def env(json_out: JSON = False, debug: DEBUG = False) -> None:
    """Print versions, torch threads, CUDA availability and the package folder (for bug reports)."""
    with _errors(debug, json_out):
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
