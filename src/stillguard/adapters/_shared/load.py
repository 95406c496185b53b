"""What the adapters' constructors share: dtypes, opening a pipeline, the saved prompt, the settings.

Every ``from_pretrained`` opens a hub id (local Hugging Face cache only) or a ``save_pretrained``
folder with safetensors only (:func:`open_pipeline`); the prompt embeddings come, in order, from
the caller, from the folder's ``prompt_embeds.safetensors`` (:func:`saved_prompt`) or from the
model's text encoder; the generation settings are the folder's ``stillguard.json`` overridden by
the options that are not ``None`` (:func:`merged_settings`), the adapter's own defaults filling the
rest. :func:`save_pipeline` writes the three back.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, NamedTuple

import torch
from torch import Tensor

from ...errors import InputError, ModelError
from .folders import (
    PROMPT_FILE,
    load_error,
    load_tensors,
    read_settings,
    resolve_model,
    save_tensors,
    write_settings,
)

_DTYPES = {
    "bf16": torch.bfloat16,
    "bfloat16": torch.bfloat16,
    "fp16": torch.float16,
    "float16": torch.float16,
    "half": torch.float16,
    "fp32": torch.float32,
    "float32": torch.float32,
    "float": torch.float32,
}


def resolve_dtype(dtype: str | torch.dtype) -> torch.dtype:
    """``torch.float32`` or one of ``"bf16"``, ``"float16"``, ``"float32"`` ... -> ``torch.dtype``."""
    if isinstance(dtype, torch.dtype):
        return dtype
    key = str(dtype).lower().replace("torch.", "")
    if key not in _DTYPES:
        raise InputError(
            f"unknown dtype {dtype!r}: use one of {', '.join(sorted(_DTYPES))} "
            "(bf16 needs a GPU or a recent CPU to be fast)"
        )
    return _DTYPES[key]


def freeze(*modules: torch.nn.Module | None) -> None:
    """Eval mode and no parameter gradients: attacks differentiate w.r.t. the input only."""
    for m in modules:
        if m is not None:
            m.eval()
            m.requires_grad_(False)


class Opened(NamedTuple):
    """A pipeline opened by :func:`open_pipeline`, with what the constructor needs besides."""

    pipe: Any
    model_id: str
    #: the local folder (``None`` for a hub id)
    folder: Path | None
    #: what ``from_pretrained`` was given: the folder as a string, or the hub id
    src: str
    device: torch.device
    dtype: torch.dtype


def resolve_source(
    model: str,
    device: str | torch.device,
    dtype: torch.dtype | str,
    *,
    cogvideox_only: bool = False,
) -> tuple[str, Path | None, str, torch.device, torch.dtype]:
    """``(model_id, folder, src, device, dtype)`` for ``model``; ``cogvideox_only`` refuses the
    shipped toy model (a CogVideoX model) for other targets."""
    dtype, device = resolve_dtype(dtype), torch.device(device)
    model_id, folder = resolve_model(model)
    if cogvideox_only and model_id == "toy":
        raise ModelError("the shipped toy model is a CogVideoX model: use target 'cogvideox-i2v'")
    src = str(folder) if folder is not None else model
    return model_id, folder, src, device, dtype


def open_pipeline(
    pipeline_class: Any,
    model: str,
    device: str | torch.device,
    dtype: torch.dtype | str,
    what: str,
    *,
    refuse_toy: bool = False,
    **fixed: Any,
) -> Opened:
    """``pipeline_class.from_pretrained`` on a hub id or folder (safetensors only, local files
    only, never remote code), moved to ``device``. ``fixed``: arguments such as
    ``text_encoder=None`` for the components stillguard does not run.

    Raises:
        ModelError: no weights, pickle-only weights, a hub id not downloaded yet (``what`` names
            the model in the message); ``refuse_toy``: the shipped toy model.
    """
    model_id, folder, src, device, dtype = resolve_source(
        model, device, dtype, cogvideox_only=refuse_toy
    )
    try:
        pipe = pipeline_class.from_pretrained(
            src, **fixed, dtype=dtype, use_safetensors=True, local_files_only=True
        )
    except (OSError, ValueError) as err:
        raise load_error(model, folder, err, what) from err
    pipe.to(device)
    return Opened(pipe, model_id, folder, src, device, dtype)


def saved_prompt(folder: Path | None) -> dict[str, Tensor] | None:
    """The tensors of the folder's ``prompt_embeds.safetensors``, or ``None`` if it has none."""
    file = folder / PROMPT_FILE if folder is not None else None
    if file is None or not file.is_file():
        return None
    return load_tensors(file)


def merged_settings(folder: Path | None, options: dict[str, Any]) -> dict[str, Any]:
    """``stillguard.json`` beside the pipeline, overridden by the options that are not ``None``."""
    settings = read_settings(folder)
    settings.update({k: v for k, v in options.items() if v is not None})
    return settings


def config_model_id(settings: dict[str, Any], folder: str | Path) -> str:
    """The model id of an adapter built from a config folder: its ``"model"`` setting, else the
    folder's name."""
    return str(settings.get("model", Path(str(folder)).name))


def save_pipeline(
    adapter: Any, path: str, prompt: dict[str, Tensor] | None, settings: dict[str, Any]
) -> None:
    """The pipeline (safetensors), the prompt tensors (if any) and ``stillguard.json`` (the
    adapter's registry name and ``settings``) into the folder ``path``."""
    folder = Path(path)
    adapter.pipe.save_pretrained(str(folder), safe_serialization=True)
    if prompt is not None:
        save_tensors(folder / PROMPT_FILE, prompt)
    write_settings(folder, {"adapter": adapter.registry_name, **settings})


#: the memory switches the constructors take (no effect on the outputs)
SWITCHES = ("gradient_checkpointing", "vae_slicing", "vae_tiling")


def memory_switches(
    pipe: Any,
    denoiser: Any,
    *,
    gradient_checkpointing: bool = False,
    vae_slicing: bool = False,
    vae_tiling: bool = False,
) -> None:
    """Memory switches (no effect on the outputs): gradient checkpointing of ``denoiser``, VAE
    slicing and tiling."""
    if gradient_checkpointing:
        denoiser.enable_gradient_checkpointing()
    if vae_slicing:
        pipe.vae.enable_slicing()
    if vae_tiling:
        pipe.vae.enable_tiling()


def prompt_pair(
    folder: Path | None,
    prompt: str,
    prompt_embeds: Tensor | None,
    negative_prompt_embeds: Tensor | None,
    embed: Any,
) -> tuple[Tensor, Tensor | None]:
    """``(prompt_embeds, negative_prompt_embeds)`` for the adapters with one embedding tensor per
    prompt: the given ones; else, when no prompt text is given, the folder's saved ones; else
    ``embed()`` (the model's text encoder, ``-> (embeds, negative embeds)``). A given negative
    embedding is kept."""
    if prompt_embeds is not None:
        return prompt_embeds, negative_prompt_embeds
    saved = saved_prompt(folder) if not prompt else None
    if saved is not None:
        prompt_embeds, negative = saved["prompt_embeds"], saved.get("negative_prompt_embeds")
    else:
        prompt_embeds, negative = embed()
    return prompt_embeds, negative if negative_prompt_embeds is None else negative_prompt_embeds


def adopt_pipeline(
    adapter: Any, pipe: Any, model_id: str, device: torch.device, dtype: torch.dtype, *frozen: Any
) -> None:
    """The constructor's first step: hold ``pipe`` (progress bar off), the model id, device and
    dtype; freeze the weights of the ``frozen`` modules (attacks differentiate the input only)."""
    adapter.pipe, adapter.model_id, adapter.device, adapter.dtype = pipe, model_id, device, dtype
    pipe.set_progress_bar_config(disable=True)
    freeze(*frozen)


def tiny_adapter(cls: Any, pipe: Any, device: str | torch.device, **state: Any) -> Any:
    """``cls`` on a tiny random model: ``pipe`` moved to ``device``, float32, model id ``"tiny"``;
    ``state``: the rest of the constructor's arguments (prompt, settings)."""
    device = torch.device(device)
    pipe.to(device)
    return cls(pipe, model_id="tiny", device=device, dtype=torch.float32, **state)
