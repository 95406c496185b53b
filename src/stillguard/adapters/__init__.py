"""Target-model adapters: importing this package registers every target (one folder a family).

This module is the adapters' public face: the registry, :func:`load_adapter` and the names the rest
of stillguard may use (nothing outside ``adapters/`` imports a private module of it). diffusers is
imported only inside the adapter methods, so this import stays cheap.
"""

from __future__ import annotations

from typing import Any

import torch

from ..errors import InputError
from ..registry import ADAPTERS

# isort: off
# the registry: importing a family registers its target(s); one line a family
from . import cogvideox  # noqa: F401
from . import cosmos2  # noqa: F401
from . import dynamicrafter  # noqa: F401
from . import hunyuan  # noqa: F401
from . import kandinsky5  # noqa: F401
from . import hunyuan15  # noqa: F401
from . import ltx  # noqa: F401
from . import ltx2  # noqa: F401
from . import open_sora  # noqa: F401
from . import skyreels  # noqa: F401
from . import sana_video  # noqa: F401
from . import svd  # noqa: F401
from . import wan  # noqa: F401

# isort: on
from . import _moved  # noqa: F401  (the old import paths: deprecated aliases, one release)
from ._shared.build import build_model
from ._shared.folders import SETTINGS_FILE, check_local_folder, read_settings, toy_folder
from ._shared.load import resolve_dtype
from ._shared.recorder import StopForward, truncated_after
from .base import Adapter, Captured, Conditioning, Denoised
from .dynamicrafter import convert as convert_dynamicrafter
from .official import config_folder, official_model, real_config

__all__ = [
    "ADAPTERS",
    "SETTINGS_FILE",
    "Adapter",
    "Captured",
    "Conditioning",
    "Denoised",
    "StopForward",
    "build_model",
    "check_local_folder",
    "config_folder",
    "convert_dynamicrafter",
    "load_adapter",
    "official_model",
    "read_settings",
    "real_config",
    "resolve_dtype",
    "toy_folder",
    "truncated_after",
]


def load_adapter(
    name: str,
    model: str = "tiny",
    device: str | torch.device = "cpu",
    dtype: str | torch.dtype = torch.float32,
    **options: Any,
) -> Adapter:
    """Build an adapter by registry name.

    Args:
        name: registered adapter name (``"cogvideox-i2v"``, ``"svd"``); unknown names list close
            matches.
        model: ``"tiny"`` (random test model, built offline), ``"toy"`` (the shipped trained model,
            CogVideoX only), a local ``save_pretrained`` folder or a hub id.
        device: torch device.
        dtype: ``torch.dtype`` or a name such as ``"bf16"``, ``"float16"``, ``"float32"``.
        **options: adapter options passed to ``from_pretrained`` (e.g. ``num_frames``).

    Returns:
        The adapter, its weights frozen.
    """
    cls = ADAPTERS.get(name)
    dt = resolve_dtype(dtype)
    if model == "tiny":
        if options or dt != torch.float32:
            raise InputError(
                f"model='tiny' is a fixed float32 test model and takes no options (got dtype={dt}, "
                f"options {sorted(options)}): drop them, or load a real model folder"
            )
        return cls.tiny(device=device)
    return cls.from_pretrained(model, device=device, dtype=dt, **options)
