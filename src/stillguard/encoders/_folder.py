"""Where an encoder's weights are: a local folder, named by an option or an environment variable.

Every learned encoder loads from a folder the user brings (nothing is downloaded): ``--clip DIR`` or
``STILLGUARD_CLIP``, ``--lpips DIR`` / ``STILLGUARD_LPIPS``, and likewise ``--dino``, ``--arcface``,
``--qalign``. Weights are read from ``.safetensors`` files only (a pickle can run code); a folder that
is missing, or holds pickles only, is refused with one line naming the option that supplies it.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError

_PICKLES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def option_names(kind: str) -> tuple[str, str]:
    """The command-line option and environment variable that name ``kind``'s folder."""
    return f"--{kind}", f"STILLGUARD_{kind.upper()}"


def resolve(kind: str, folder: str | os.PathLike[str] | None, what: str) -> Path:
    """The checked folder of encoder ``kind`` (``folder``, else its environment variable).

    Raises:
        ModelError: no folder given, not a folder, no ``.safetensors`` weights, or pickles only.
    """
    opt, env = option_names(kind)
    given = folder if folder is not None else os.environ.get(env) or None
    if given is None:
        raise ModelError(
            f"{what} needs local weights: pass {opt} DIR (or set {env}); stillguard never downloads"
        )
    path = Path(given).expanduser()
    if not path.is_dir():
        raise ModelError(
            f"{opt} {path}: not a folder; pass the folder that holds the {what} weights"
        )
    files = [p for p in path.rglob("*") if p.is_file()]
    if any(p.suffix == ".safetensors" for p in files):
        return path
    pickles = [p.name for p in files if p.suffix in _PICKLES]
    if pickles:
        raise ModelError(
            f"{opt} {path}: the {what} weights are pickles only ({pickles[0]}); stillguard loads "
            ".safetensors only (a pickle can run code): convert them where you trust the file"
        )
    raise ModelError(f"{opt} {path}: no .safetensors weights in it; pass the {what} weights folder")


def read_config(path: Path, what: str, kind: str) -> dict[str, Any]:
    """``config.json`` of the folder (``{}`` when absent)."""
    file = path / "config.json"
    if not file.is_file():
        return {}
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"--{kind} {path}: cannot read config.json ({err})") from None
    if not isinstance(data, dict):
        raise ModelError(f"--{kind} {path}: config.json must hold a JSON object")
    return data


def load_state(path: Path, kind: str) -> dict[str, torch.Tensor]:
    """Every tensor of every ``.safetensors`` file in the folder (not in sub-folders)."""
    from safetensors.torch import load_file

    files = sorted(path.glob("*.safetensors"))
    if not files:
        raise ModelError(f"--{kind} {path}: no .safetensors file at the top of the folder")
    out: dict[str, torch.Tensor] = {}
    for f in files:
        out.update(load_file(str(f)))
    return out


def load_strict(
    module: torch.nn.Module, state: dict[str, torch.Tensor], path: Path, kind: str
) -> None:
    """Load ``state`` into ``module`` key for key; one line naming what is missing or extra."""
    missing, unexpected = module.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"--{kind} {path}: the weights do not match the network ({len(missing)} missing, e.g. "
            f"{missing[:2]}; {len(unexpected)} unexpected, e.g. {unexpected[:2]}); see the "
            "encoder's docstring for the expected key names"
        )


def save_state(module: torch.nn.Module, folder: Path, config: dict[str, Any]) -> Path:
    """Write ``config.json`` and ``model.safetensors`` (what :func:`load_state` reads)."""
    from safetensors.torch import save_file

    folder.mkdir(parents=True, exist_ok=True)
    (folder / "config.json").write_text(json.dumps(config, indent=1, sort_keys=True) + "\n")
    state = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    save_file(state, str(folder / "model.safetensors"))
    return folder


def hf_load(cls: Any, path: Path, kind: str, what: str, dtype: torch.dtype) -> Any:
    """``cls.from_pretrained(path)`` offline and safetensors-only, failures as one line."""
    try:
        return cls.from_pretrained(str(path), local_files_only=True, use_safetensors=True,
                                   dtype=dtype)  # fmt: skip
    except (OSError, ValueError, KeyError, RuntimeError) as err:
        msg = " ".join(str(err).split())[:300]
        raise ModelError(f"--{kind} {path}: cannot load the {what} ({msg})") from None
