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
from .dc_model import DCModel

#: the 256 checkpoint names the fps embedding ``framestride_embed`` (the official loader renames it)
RENAMES = (("framestride_embed", "fps_embedding"),)
PARTS = ("1024", "512", "256")


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
