"""Turn DynamiCrafter's official Lightning ``model.ckpt`` (a pickle) into safetensors, safely.

The file is read with ``torch.load(..., weights_only=True)``: torch's restricted unpickler builds
tensors, containers and plain numbers only, and refuses every other global (any class or function
the pickle names), so nothing in the file can run code. A checkpoint that needs more (e.g. one that
stores Lightning callbacks or OmegaConf hyper-parameters) is refused with one message saying what
it asked for and how to strip it in an environment the user trusts; we never fall back to full
unpickling. What is kept: the ``state_dict`` (Lightning), or a DeepSpeed ``module`` dict (prefix
``_forward_module.`` dropped, as the official loader does), or a bare ``{name: tensor}`` dict;
non-tensor entries are dropped and counted, and the 256 model's ``framestride_embed`` keys are
renamed ``fps_embedding`` (the official loader's rename), so the output loads strictly into
``DynamiCrafter.official_model(part)``.
"""

from __future__ import annotations

import pickle
import re
from collections import Counter
from pathlib import Path
from typing import Any

import torch

from ...errors import InputError, ModelError
from .weights import PARTS, guess_part, rename_official

PREFIXES = ("model.diffusion_model", "first_stage_model", "cond_stage_model", "embedder", "image_proj_model")  # fmt: skip
DEEPSPEED_PREFIX = "_forward_module."


def _load(path: Path) -> Any:
    try:
        try:
            return torch.load(str(path), map_location="cpu", weights_only=True, mmap=True)
        except RuntimeError as err:  # legacy (non-zip) files cannot be memory-mapped
            if "mmap" not in str(err):
                raise
            return torch.load(str(path), map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as err:
        text = " ".join(str(err).split())
        pattern = (
            r"(?:unsupported GLOBAL|Unsupported global: GLOBAL) [\w.]+|Unsupported operand \d+"
        )
        found = re.search(pattern, text)
        what = found.group(0).strip() if found else text[:200]
        raise InputError(
            f"{path} needs full unpickling, which can run arbitrary code, so stillguard refuses it "
            f"(torch's weights-only loader said: {what}); if you trust the file, strip it to its "
            "tensors elsewhere (sd = torch.load(f, weights_only=False)['state_dict']; "
            "torch.save({'state_dict': sd}, 'clean.ckpt')) and convert clean.ckpt"
        ) from None
    except (OSError, RuntimeError, ValueError, EOFError) as err:
        raise InputError(f"cannot read {path} as a PyTorch checkpoint: {err}") from None


def _state_dict(obj: Any, path: Path) -> tuple[dict[str, torch.Tensor], int]:
    """The tensors to keep and the number of non-tensor entries dropped."""
    if isinstance(obj, dict) and isinstance(obj.get("state_dict"), dict):
        raw = obj["state_dict"]
    elif isinstance(obj, dict) and isinstance(obj.get("module"), dict):
        raw = {k.removeprefix(DEEPSPEED_PREFIX): v for k, v in obj["module"].items()}
    elif isinstance(obj, dict) and any(isinstance(v, torch.Tensor) for v in obj.values()):
        raw = obj
    else:
        raise InputError(
            f"{path} holds no state_dict (top level: {type(obj).__name__}"
            f"{' with keys ' + str(sorted(map(str, obj))[:6]) if isinstance(obj, dict) else ''}): "
            "is it a DynamiCrafter model.ckpt?"
        )
    tensors = {str(k): v for k, v in raw.items() if isinstance(v, torch.Tensor)}
    return rename_official(tensors), len(raw) - len(tensors)


def _unshare(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """safetensors refuses tensors that share memory: copy the second and later ones."""
    seen: set[tuple[int, int]] = set()
    out = {}
    for k, v in state.items():
        key = (v.untyped_storage().data_ptr(), v.storage_offset()) if v.numel() else (0, id(v))
        out[k] = v.clone().contiguous() if key in seen else v.contiguous()
        seen.add(key)
    return out


def _summary(state: dict[str, torch.Tensor], dropped: int) -> dict[str, Any]:
    tensors: Counter[str] = Counter()
    params: Counter[str] = Counter()
    for k, v in state.items():
        prefix = next((p for p in PREFIXES if k.startswith(p + ".")), "schedule buffers")
        tensors[prefix] += 1
        params[prefix] += v.numel()
    part = None
    if any(k.startswith("model.diffusion_model.") for k in state):
        try:
            part = guess_part(list(state), state.get("scale_arr"))
        except ModelError:
            part = None
    return {
        "tensors": len(state),
        "dropped_non_tensors": dropped,
        "by_prefix": {p: {"tensors": tensors[p], "values": params[p]} for p in tensors},
        "dtypes": dict(Counter(str(v.dtype).replace("torch.", "") for v in state.values())),
        "model": part if part in PARTS else None,
    }


def check_against_official(state: dict[str, torch.Tensor], part: str) -> dict[str, list[str]]:
    """Keys missing from / unexpected in ``state`` versus ``official_model(part)``, wrong shapes."""
    from .adapter import DynamiCrafter

    ref = {k: tuple(v.shape) for k, v in DynamiCrafter.official_model(part).state_dict().items()}
    return {
        "missing": sorted(set(ref) - set(state)),
        "unexpected": sorted(set(state) - set(ref)),
        "wrong_shape": sorted(k for k in ref if k in state and tuple(state[k].shape) != ref[k]),
    }


def convert(src: str | Path, dst: str | Path, *, overwrite: bool = False, check: bool = True) -> dict[str, Any]:  # fmt: skip
    """Convert ``src`` (``model.ckpt``) to ``dst`` (``.safetensors``); return what was kept.

    Raises:
        InputError: unreadable or unsafe input, bad output path, nothing to keep.
    """
    src, dst = Path(src).expanduser(), Path(dst).expanduser()
    if not src.is_file():
        raise InputError(f"{src} is not a file: pass the downloaded model.ckpt")
    if dst.suffix != ".safetensors":
        raise InputError(f"the output {dst} must end in .safetensors")
    if dst.exists() and not overwrite:
        raise InputError(f"{dst} exists: choose another name or pass --force to replace it")
    if dst.resolve() == src.resolve():
        raise InputError("the output must not be the input file")
    state, dropped = _state_dict(_load(src), src)
    if not state:
        raise InputError(f"{src} holds no tensors to convert")
    from safetensors.torch import save_file

    report = _summary(state, dropped)
    if check and report["model"]:
        report["official_check"] = {
            k: v[:5] for k, v in check_against_official(state, report["model"]).items()
        }
    dst.parent.mkdir(parents=True, exist_ok=True)
    tmp = dst.with_name(dst.name + ".partial")
    save_file(_unshare(state), str(tmp), metadata={"format": "pt", "source": src.name})
    tmp.replace(dst)
    report["output"] = str(dst)
    return report
