"""Building and loading :class:`DCModel` from config folders and official-key safetensors.

Never unpickles: weights are safetensors only (``stillguard convert`` turns the official
``model.ckpt`` into one). A single converted file carries no config; which released model it is
follows from its keys and buffers: a learnable image-attention scale (``...attn2.alpha``) only in the
256 model, and the dynamic-rescale floor ``scale_arr[-1]`` is 0.3 in the 1024 and 0.7 in the 512
model (``base_scale`` in their inference YAMLs).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch

from ...errors import InputError, ModelError
from .._shared.folders import PROMPT_FILE, check_local_folder, load_tensors, read_settings
from . import config as dc_config
from .nets.clip import TextEmbedder
from .nets.model import DCModel

#: the 256 checkpoint names the fps embedding ``framestride_embed`` (the official loader renames it)
RENAMES = (("framestride_embed", "fps_embedding"),)
PARTS = ("1024", "512", "256")
PROMPT_KEYS = ("prompt_embeds", "negative_prompt_embeds")


def rename_official(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Apply the official loader's key renames (``scripts/evaluation/funcs.py``)."""
    out = {}
    for key, value in state.items():
        for old, new in RENAMES:
            key = key.replace(old, new)
        out[key] = value
    return out


def guess_part(keys: list[str], scale_arr: torch.Tensor | None) -> str:
    """Which released model (``"1024"``, ``"512"``, ``"256"``) a converted file holds."""
    if any(k.endswith("attn2.alpha") for k in keys) or scale_arr is None:
        return "256"
    floor = float(scale_arr[-1])
    if abs(floor - 0.3) < 1e-3:
        return "1024"
    if abs(floor - 0.7) < 1e-3:
        return "512"
    raise ModelError(
        f"cannot tell which DynamiCrafter model this file holds (scale_arr ends at {floor:.3f}, "
        "expected 0.3 for 1024 or 0.7 for 512): pass config='1024', '512' or '256'"
    )


def read_safetensors(file: Path) -> dict[str, torch.Tensor]:
    """All tensors of a ``.safetensors`` file (refuses other formats)."""
    if file.suffix != ".safetensors":
        raise ModelError(
            f"{file} is not a .safetensors file: stillguard never unpickles weights; convert the "
            f"official checkpoint once with `stillguard convert {file.name} model.safetensors`"
        )
    from safetensors.torch import load_file

    try:
        return rename_official(load_file(str(file)))
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {file}: {err}") from err


def build(
    config: dict[str, Any], *, with_text: bool, device: str | torch.device = "cpu"
) -> DCModel:
    """A :class:`DCModel` with random weights (nothing allocated on ``device="meta"``)."""
    with torch.device(device):
        return DCModel(config, with_text=with_text)


def load_into(model: DCModel, state: dict[str, torch.Tensor], source: str) -> None:
    """Strict load of official keys; the text tower's keys may be absent if the model has none."""
    if model.cond_stage_model is None:
        state = {k: v for k, v in state.items() if not k.startswith("cond_stage_model.")}
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    wrong = [k for k in own if k in state and tuple(state[k].shape) != tuple(own[k].shape)]
    if missing or unexpected or wrong:
        raise ModelError(
            f"{source} does not match this DynamiCrafter configuration: {len(missing)} missing "
            f"(e.g. {missing[:2]}), {len(unexpected)} unexpected (e.g. {unexpected[:2]}), "
            f"{len(wrong)} of another shape (e.g. {wrong[:2]}); check the config (1024/512/256)"
        )
    model.load_state_dict(state, strict=True)


def check_part(part: str) -> str:
    part = str(part)
    if part not in PARTS:
        raise InputError(f"unknown DynamiCrafter part {part!r}: use one of {', '.join(PARTS)}")
    return part


def resolve(model: str, config: str | None) -> tuple[Path, dict[str, torch.Tensor]]:
    """``(config folder, official-key tensors)`` of a saved folder or one converted file.

    For a single file, ``config`` is ``"1024"``/``"512"``/``"256"`` (a shipped configuration) or a
    config folder; by default the file's keys tell (:func:`guess_part`).
    """
    path = Path(model).expanduser()
    if model in ("tiny", "toy") or not path.exists():
        raise ModelError(
            f"dynamicrafter loads local safetensors only, and {model!r} is not a local file or "
            "folder: download the official model.ckpt (e.g. Doubiiu/DynamiCrafter_1024), run "
            "`stillguard convert model.ckpt dynamicrafter.safetensors` and pass that file"
        )
    if path.is_dir():
        if not (path / "model_index.json").is_file() and list(path.glob("*.ckpt")):
            raise ModelError(
                f"{path} holds the official pickle checkpoint, which stillguard never unpickles: "
                f"run `stillguard convert {path / 'model.ckpt'} dynamicrafter.safetensors` once "
                "and pass the .safetensors file"
            )
        check_local_folder(path)
        return path, read_safetensors(path / dc_config.WEIGHTS_FILE)
    state = read_safetensors(path)
    if config is not None and Path(config).is_dir():
        return Path(config), state
    part = check_part(config) if config else guess_part(list(state), state.get("scale_arr"))
    from ..official import config_folder

    return config_folder(f"dynamicrafter-{part}"), state


def settings_of(folder: Path) -> dict[str, Any]:
    """Generation defaults of ``stillguard.json`` (without ``adapter`` and ``_``-keys)."""
    return {
        k: v for k, v in read_settings(folder).items() if k != "adapter" and not k.startswith("_")
    }


def prompt_embeddings(
    net: DCModel, folder: Path, pe: torch.Tensor | None, ne: torch.Tensor | None
) -> dict[str, torch.Tensor]:
    """Prompt and negative-prompt embeddings ``(1, 77, D)``: given, stored, or the empty prompt.

    Without stored ones, a model that holds the text tower embeds the empty prompt exactly (the
    official no-text mode and unconditional branch).
    """
    stored: dict[str, torch.Tensor] = {}
    if (folder / PROMPT_FILE).is_file():
        stored = load_tensors(folder / PROMPT_FILE)
    if net.cond_stage_model is not None and not stored:
        with torch.no_grad():
            empty = net.cond_stage_model(TextEmbedder.empty_tokens())
        stored = {"prompt_embeds": empty, "negative_prompt_embeds": empty}
    if pe is not None:
        stored["prompt_embeds"] = pe
    if ne is not None:
        stored["negative_prompt_embeds"] = ne
    if set(PROMPT_KEYS) - set(stored):
        raise ModelError(
            f"{folder} has no prompt embeddings and no text tower: pass prompt_embeds= and "
            "negative_prompt_embeds= (1, 77, D), or use a checkpoint with cond_stage_model.*"
        )
    return {k: stored[k].detach() for k in PROMPT_KEYS}
