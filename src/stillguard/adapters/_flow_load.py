"""What the loaders of the flow-matching video adapters (``ltx-i2v``, ``hunyuan-i2v``) share.

Both adapters hold a pipeline, a dict of prompt tensors (completed by the family's
:meth:`~FlowLoading.complete_prompt`: masks default to ones, negatives to zeros) and their
generation settings, and are constructed the same way:

* ``from_pretrained`` opens the pipeline (:func:`._load.open_pipeline`), gathers the prompt tensors
  its own way, then ends in :meth:`~FlowLoading.adapter_from_opened`: the memory switches
  (gradient checkpointing of the transformer, VAE slicing and tiling), the completed prompt and the folder's
  ``stillguard.json`` overridden by the options that are not ``None``;
* ``from_config`` applies the same memory switches and builds transformer, VAE and ``FlowMatchEulerDiscreteScheduler`` from a
  config-only folder (:func:`._ltx_parts.flow_pipeline_from_config`; random weights, nothing
  allocated on ``"meta"``) with zero prompt embeddings of the published shape
  (:meth:`~FlowLoading.zero_prompt`, made on ``device``); the model id is the folder's ``"model"``
  setting, else its name.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
from torch import Tensor

from ._generate import VideoGeneration
from ._load import SWITCHES, Opened, config_model_id, memory_switches, merged_settings
from ._ltx_parts import flow_pipeline_from_config


class FlowLoading(VideoGeneration):
    """``from_config`` and the end of ``from_pretrained`` for a flow-matching video adapter (a
    mixin); a family names its diffusers classes and components and its prompt tensors."""

    #: diffusers class names: the pipeline, its transformer and its VAE
    DIFFUSERS_CLASSES: ClassVar[tuple[str, str, str]]
    #: pipeline components stillguard does not run (text encoders, tokenizers), set to ``None``
    ABSENT: ClassVar[tuple[str, ...]]

    @staticmethod
    def complete_prompt(prompt: dict[str, Tensor | None]) -> dict[str, Tensor]:
        """The constructor's prompt tensors from the given ones (defaults filled in)."""
        raise NotImplementedError

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        """Zero prompt tensors of the published shape for a pipeline built from a config."""
        raise NotImplementedError

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
        **options: Any,
    ) -> Any:
        """Random weights (nothing allocated on ``"meta"``) from a config-only folder; zero prompt
        embeddings of the published shape (:meth:`zero_prompt`); the memory switches
        (``gradient_checkpointing``, ``vae_slicing``, ``vae_tiling``) applied as
        ``from_pretrained`` applies them, so that a plan sizes what a run will do."""
        import diffusers

        options = dict(options)
        switches = {k: bool(options.pop(k)) for k in SWITCHES if k in options}

        pipeline_cls, transformer_cls, vae_cls = (
            getattr(diffusers, name) for name in cls.DIFFUSERS_CLASSES
        )
        pipe, settings = flow_pipeline_from_config(
            folder, pipeline_cls, transformer_cls, vae_cls, cls.ABSENT, device, dtype, options
        )
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
