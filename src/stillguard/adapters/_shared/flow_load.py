"""What the loaders of the flow-matching video adapters (``ltx-i2v``, ``ltx2-i2v``,
``hunyuan-i2v``, ``hunyuan15-i2v``, ``sana-video-i2v``, ``kandinsky5-i2v``) share.

These adapters hold a pipeline, a dict of prompt tensors (completed by the family's
:meth:`~FlowLoading.complete_prompt`: masks default to ones, negatives to zeros) and their
generation settings, and are constructed the same way:

* ``from_pretrained`` (:meth:`~FlowLoading.from_options`) opens the pipeline
  (:func:`.load.open_pipeline`), takes the prompt tensors from the caller, else the folder's
  ``prompt_embeds.safetensors``, else the family's text encoder where it runs one (``ltx-i2v``,
  ``ltx2-i2v``, ``kandinsky5-i2v``), then ends in :meth:`~FlowLoading.adapter_from_opened`: the
  memory switches (gradient checkpointing of the transformer, VAE slicing and tiling), the
  completed prompt and the folder's ``stillguard.json`` overridden by the options that are not
  ``None``;
* ``from_config`` builds the pipeline from a config-only folder (:func:`.build.config_pipeline`;
  random weights drawn from ``seed``, nothing allocated on ``"meta"``), applies the same memory
  switches, and holds zero prompt embeddings of the published shape
  (:meth:`~FlowLoading.zero_prompt`, made on ``device``); the model id is the folder's ``"model"``
  setting, else its name.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import Tensor

from ...errors import ModelError
from .build import config_pipeline
from .folders import read_settings
from .load import (
    SWITCHES,
    Opened,
    config_model_id,
    memory_switches,
    merged_settings,
    open_pipeline,
    saved_prompt,
)
from .settings import refuse_unknown


class FlowLoading:
    """``from_config`` and the end of ``from_pretrained`` for a flow-matching video adapter (a
    mixin); a family names its diffusers classes and components and its prompt tensors."""

    #: the diffusers pipeline class name (its components come from the folder's model_index.json)
    PIPELINE: ClassVar[str]
    #: pipeline components stillguard does not run (text encoders, tokenizers), set to ``None``
    ABSENT: ClassVar[tuple[str, ...]]
    #: the adapter's registry name (set by the registry)
    registry_name: ClassVar[str]

    @staticmethod
    def complete_prompt(prompt: dict[str, Tensor | None]) -> dict[str, Tensor]:
        """The constructor's prompt tensors from the given ones (defaults filled in)."""
        raise NotImplementedError

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        """Zero prompt tensors of the published shape for a pipeline built from a config."""
        raise NotImplementedError

    @classmethod
    def from_options(
        cls,
        model: str,
        device: str | torch.device,
        dtype: torch.dtype | str,
        options: dict[str, Any],
        *,
        keys: tuple[str, ...],
        settings: Sequence[str] | None,
        what: str,
        prompt: str = "",
        embed: Callable[[Opened], dict[str, Tensor]] | None = None,
        required: tuple[str, ...] = (),
        missing: str = "",
        **switches: bool,
    ) -> Any:
        """``from_pretrained`` of a flow adapter. Its prompt tensors (``keys``, the first the main
        embedding) are the caller's in ``options``; when it gives none: with no ``prompt`` text,
        the folder's ``prompt_embeds.safetensors`` if it has one, else ``embed(opened)`` (the
        model's text encoder, once) when the family runs one. Every other option must be one of
        ``settings`` (``None``: the caller checked them).

        Raises:
            InputError: an option that is neither a prompt tensor nor a setting.
            ModelError: no weights or pickle-only weights (``what`` names the model), or a
                ``required`` tensor missing (``missing`` says how to supply it).
        """
        import diffusers

        given = {k: options.pop(k, None) for k in keys}
        if settings is not None:
            refuse_unknown(cls.registry_name, options, settings)
        opened = open_pipeline(
            getattr(diffusers, cls.PIPELINE), model, device, dtype, what,
            **dict.fromkeys(cls.ABSENT),
        )  # fmt: skip
        if given[keys[0]] is None:
            found = saved_prompt(opened.folder) if not prompt else None
            if found is None and embed is not None:
                found = embed(opened)
            given.update(found or {})
        if any(given.get(k) is None for k in required):
            raise ModelError(f"{model!r}: {missing}")
        return cls.adapter_from_opened(opened, given, options, **switches)

    @classmethod
    def adapter_from_opened(
        cls,
        opened: Opened,
        prompt: dict[str, Tensor | None],
        options: dict[str, Any],
        *,
        gradient_checkpointing: bool,
        vae_slicing: bool,
        vae_tiling: bool,
    ) -> Any:
        """The adapter on an opened pipeline: memory switches, completed ``prompt``, the folder's
        settings overridden by ``options``."""
        pipe = opened.pipe
        memory_switches(
            pipe, pipe.transformer, gradient_checkpointing=gradient_checkpointing,
            vae_slicing=vae_slicing, vae_tiling=vae_tiling,
        )  # fmt: skip
        return cls(
            pipe,
            model_id=opened.model_id,
            prompt=cls.complete_prompt(prompt),
            settings=merged_settings(opened.folder, options),
            device=opened.device,
            dtype=opened.dtype,
        )

    @classmethod
    def from_config(
        cls,
        folder: str | Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        **options: Any,
    ) -> Any:
        """Random weights from ``seed`` (nothing allocated on ``"meta"``) from a config-only
        folder; zero prompt embeddings of the published shape (:meth:`zero_prompt`); the memory
        switches (``gradient_checkpointing``, ``vae_slicing``, ``vae_tiling``) applied as
        ``from_pretrained`` applies them, so that a plan sizes what a run will do."""
        import diffusers

        options = dict(options)
        switches = {k: bool(options.pop(k)) for k in SWITCHES if k in options}
        pipe = config_pipeline(
            folder, getattr(diffusers, cls.PIPELINE), seed=seed, device=device, dtype=dtype,
            skip=cls.ABSENT, needed=("transformer", "vae", "scheduler"), what=f"a {cls.PIPELINE}",
        )  # fmt: skip
        settings = {**read_settings(Path(folder)), **options}
        memory_switches(pipe, pipe.transformer, **switches)
        with torch.device(device):
            prompt = cls.zero_prompt(pipe, settings, dtype)
        return cls(
            pipe,
            model_id=config_model_id(settings, folder),
            prompt=cls.complete_prompt(prompt),
            settings=settings,
            device=torch.device(device),
            dtype=dtype,
        )
