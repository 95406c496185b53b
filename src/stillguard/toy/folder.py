"""How a toy pipeline folder is written and read, for both toy families (:mod:`.build`,
:mod:`.wan_build`).

A folder holds the diffusers pipeline in fp16 safetensors (``save_pretrained``, no text encoder
or tokenizer), the fixed null prompt in ``prompt_embeds.safetensors`` and the generation defaults
in ``stillguard.json`` (64x64, 9 frames, the number of sampler steps, guidance 1; for a toy that
another adapter than ``cogvideox-i2v`` runs, its ``"adapter"`` name first). Every file is made
readable by all (safetensors are written owner-only; the package ships them). Reading uses plain
diffusers with safetensors and local files only.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from pathlib import Path
from typing import Any

import torch

logger = logging.getLogger(__name__)

PROMPT_FILE, SETTINGS_FILE = "prompt_embeds.safetensors", "stillguard.json"


def export(
    assemble: Callable[[Any, Any], Any],
    vae: torch.nn.Module,
    transformer: torch.nn.Module,
    path: str | Path,
    prompt: dict[str, torch.Tensor],
    defaults: dict[str, Any],
    *,
    what: str,
) -> Path:
    """Write the folder of ``assemble(vae, transformer)`` (copies on the CPU, cast to fp16), the
    ``prompt`` tensors and the generation ``defaults``; ``what`` names the model in the log."""
    import copy

    from safetensors.torch import save_file

    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    pipe = assemble(copy.deepcopy(vae).cpu(), copy.deepcopy(transformer).cpu())
    pipe.to(torch.float16)
    pipe.save_pretrained(str(path), safe_serialization=True)
    save_file(prompt, str(path / PROMPT_FILE))
    (path / SETTINGS_FILE).write_text(json.dumps(defaults, indent=2) + "\n")
    files = [f for f in path.rglob("*") if f.is_file()]
    for f in files:
        f.chmod(0o644)
    size = sum(f.stat().st_size for f in files)
    logger.info("exported %s to %s (%.1f MB)", what, path, size / 1e6)
    return path


def load(pipeline_class: Any, path: Path, dtype: torch.dtype) -> tuple[Any, torch.Tensor, dict]:
    """``(pipeline, prompt_embeds, defaults)`` of the folder ``path``; the progress bar is off and
    ``defaults`` (the keyword arguments of the pipeline's call) leave out the adapter name."""
    from safetensors.torch import load_file

    pipe = pipeline_class.from_pretrained(
        str(path), text_encoder=None, tokenizer=None, dtype=dtype, use_safetensors=True,
        local_files_only=True,
    )  # fmt: skip
    pipe.set_progress_bar_config(disable=True)
    embeds = load_file(str(path / PROMPT_FILE))["prompt_embeds"].to(dtype)
    defaults = json.loads((path / SETTINGS_FILE).read_text())
    defaults.pop("adapter", None)
    return pipe, embeds, defaults
