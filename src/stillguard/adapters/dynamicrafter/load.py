"""Building the ``dynamicrafter`` adapter: from converted weights, from a config-only folder, tiny.

:class:`DynamiCrafterLoading` is a mixin of :class:`~.adapter.DynamiCrafter`; every
constructor ends in ``cls(net, ...)`` with the :class:`.nets.model.DCModel`, the generation
settings and the prompt embeddings ``{"prompt_embeds", "negative_prompt_embeds"}`` ``(1, 77, D)``.

* :meth:`~DynamiCrafterLoading.from_pretrained`: a :meth:`~DynamiCrafterLoading.save_pretrained`
  folder or one ``model.safetensors`` converted from the official pickle by
  ``stillguard convert`` (hub ids are refused: the official weights are pickles); loading,
  config guessing and prompt embedding live in :mod:`.weights`;
* :meth:`~DynamiCrafterLoading.from_config`: random weights from a config-only folder (nothing
  allocated on ``device="meta"`` or under ``FakeTensorMode``), zero prompt embeddings;
* :meth:`~DynamiCrafterLoading.official_model`: the whole ``LatentVisualDiffusion`` of an official
  ``model.ckpt`` (1024/512/256), official parameter names;
* :meth:`~DynamiCrafterLoading.tiny`: every switch of the 1024 model on, at toy widths.

Every constructor also takes the memory switches :data:`SWITCHES` (no effect on values or
gradients, not saved): ``gradient_checkpointing`` (UNet blocks recompute in backward) and
``vae_slicing`` (the VAE encodes batch items one by one). ``vae_tiling`` is refused with a clear
message: tiles would change the SD VAE's latent (its mid-block attention sees the whole image).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch
from torch import Tensor

from ...errors import InputError
from .._shared.folders import PROMPT_FILE, save_tensors, write_settings
from .._shared.load import resolve_dtype, tiny_adapter
from . import config as dc_config
from . import weights
from .tiny import TINY, TINY_FRAMES, dynamicrafter_model

T = TypeVar("T", bound="DynamiCrafterLoading")

#: memory switches (no effect on the outputs; not generation settings, so never saved)
SWITCHES = ("gradient_checkpointing", "vae_slicing")


def _switch(net: Any, options: dict[str, Any]) -> None:
    """Pop the memory switches out of ``options`` and apply them to the :class:`DCModel`."""
    if options.pop("vae_tiling", False):
        raise InputError(
            "dynamicrafter has no VAE tiling: its SD VAE's mid-block attention spans the whole "
            "image, so tiles would change the latent; use vae_slicing, a lower resolution "
            "(height/width) or gradient_checkpointing instead"
        )
    flags = {k: bool(options.pop(k, False) or False) for k in SWITCHES}
    net.unet.gradient_checkpointing = flags["gradient_checkpointing"]
    net.vae.use_slicing = flags["vae_slicing"]


class DynamiCrafterLoading:
    """Constructors and ``save_pretrained`` of the DynamiCrafter adapter (a mixin)."""

    @classmethod
    def from_pretrained(cls: type[T], model: str, *, device: str | torch.device = "cpu", dtype: torch.dtype | str = torch.float32, config: str | None = None, prompt_embeds: Tensor | None = None, negative_prompt_embeds: Tensor | None = None, **settings: Any) -> T:  # fmt: skip
        """A folder written by :meth:`save_pretrained`, or one converted ``model.safetensors``.

        ``config`` (``"1024"``, ``"512"``, ``"256"``) picks the shipped configuration for a single
        file (default: told by its keys). Hub ids are refused: the official weights are pickles,
        convert them once with ``stillguard convert``. ``settings`` override ``stillguard.json``;
        the memory switches (:data:`SWITCHES`) are taken out of them.
        """
        dtype, device = resolve_dtype(dtype), torch.device(device)
        folder, state = weights.resolve(model, config)
        has_text = any(k.startswith("cond_stage_model.") for k in state)
        net = weights.build(dc_config.read_config(folder), with_text=has_text)
        weights.load_into(net, state, str(model))
        _switch(net, settings)
        stored = weights.settings_of(folder)
        stored.update({k: v for k, v in settings.items() if v is not None})
        prompt = weights.prompt_embeddings(net, folder, prompt_embeds, negative_prompt_embeds)
        net.cond_stage_model = None  # prompts are embedded: drop the text tower
        net.to(device, dtype)
        return cls(net, model_id=str(model), settings=stored, prompt=prompt, device=device, dtype=dtype)  # fmt: skip

    @classmethod
    def tiny(cls: type[T], seed: int = 0, *, device: str | torch.device = "cpu", gradient_checkpointing: bool = False, vae_slicing: bool = False) -> T:  # fmt: skip
        """64×64, 4 frames; every switch of the 1024 model on, at toy widths (:mod:`.tiny`),
        and the given memory switches (:data:`SWITCHES`)."""
        switches = dict(gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing)
        net = dynamicrafter_model(seed)
        _switch(net, switches)
        gen = torch.Generator().manual_seed(seed)
        dim = TINY["unet"]["context_dim"]
        prompt = {k: torch.randn(1, 77, dim, generator=gen) for k in weights.PROMPT_KEYS}
        settings = dict(height=64, width=64, num_frames=TINY_FRAMES, num_inference_steps=3)
        return tiny_adapter(cls, net, device, settings=settings, prompt=prompt)

    @classmethod
    def from_config(cls: type[T], folder: str | Any, *, device: str | torch.device = "cpu", dtype: torch.dtype = torch.float32, **options: Any) -> T:  # fmt: skip
        """Random weights from a config-only folder; zero prompt embeddings ``(1, 77, D)``;
        ``options``: generation settings and the memory switches (:data:`SWITCHES`)."""
        folder, dtype, options = Path(folder), resolve_dtype(dtype), dict(options)
        config = dc_config.read_config(folder)
        net = weights.build(config, with_text=False, device=device)
        _switch(net, options)
        if dtype != torch.float32:  # (a no-op cast fails under FakeTensorMode)
            net.to(dtype=dtype)
        dim = int(config["unet"]["context_dim"])
        with torch.device(device):
            prompt = {k: torch.zeros(1, 77, dim) for k in weights.PROMPT_KEYS}
        settings = weights.settings_of(folder)
        settings.update(options)
        return cls(net, model_id=str(folder), settings=settings, prompt=prompt, device=torch.device(device), dtype=dtype)  # fmt: skip

    @classmethod
    def official_model(cls, part: str, *, device: str | torch.device = "meta") -> torch.nn.Module:
        """The ``LatentVisualDiffusion`` of the official ``model.ckpt`` of ``part`` (1024/512/256)."""
        from ..official import config_folder

        folder = config_folder(f"dynamicrafter-{weights.check_part(part)}")
        return weights.build(dc_config.read_config(folder), with_text=True, device=device)

    def save_pretrained(self, path: str) -> None:
        """Config folder + ``model.safetensors`` (official keys) + prompt embeddings."""
        folder = Path(path)
        dc_config.write_config(folder, self.pipe.config)
        save_tensors(folder / dc_config.WEIGHTS_FILE, self.pipe.state_dict())
        save_tensors(folder / PROMPT_FILE, self.prompt)
        write_settings(folder, {"adapter": self.registry_name, **self.settings})
