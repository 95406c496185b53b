"""Building the ``skyreels-v2-i2v`` adapter (a mixin): from weights, from a config-only folder,
tiny; saving.

The flavour is read from the folder, never asked for: ``model_index.json`` names
``SkyReelsV2ImageToVideoPipeline`` (I2V checkpoints) or a diffusion-forcing class
(``SkyReelsV2DiffusionForcingPipeline`` in the published DF folders, which
``SkyReelsV2DiffusionForcingImageToVideoPipeline`` loads, as diffusers' own example does); a
text-to-video folder is refused. Every constructor ends in ``cls(pipe, ...)`` with the pipeline, the
prompt embeddings and the settings, after the memory switches: ``gradient_checkpointing`` and
``vae_slicing``; ``vae_tiling`` is refused (the Wan VAE: see :mod:`stillguard.adapters.wan`).

* :meth:`~SkyReelsLoading.from_pretrained`: a hub id (local cache only) or a ``save_pretrained``
  folder; the CLIP image processor is read from its JSON alone (the published folders name a
  ``CLIPProcessor``, which would also want tokenizer files); the prompt is embedded once with the
  folder's UMT5 (:mod:`.._shared.umt5`), then dropped;
* :meth:`~SkyReelsLoading.from_config`: every component of a config-only folder with random
  weights (:func:`~.._shared.build.config_pipeline`), zero prompt embeddings ``(1, 512, 4096)``;
* :meth:`~SkyReelsLoading.tiny`: one tiny random model per flavour (:mod:`.tiny`).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.build import config_pipeline, read_json
from .._shared.clip_image import clip_image_processor
from .._shared.folders import load_error, read_settings
from .._shared.load import (
    config_model_id,
    memory_switches,
    merged_settings,
    open_pipeline,
    resolve_dtype,
    resolve_source,
    save_pipeline,
    tiny_adapter,
)
from .._shared.umt5 import TEXT_TOKENS, umt5_prompt_pair
from .._shared.wan_conditioning import check_options
from .tiny import FRAMES, HEIGHT, WIDTH, skyreels_pipe

#: flavour -> the diffusers pipeline class that runs it
FLAVOURS = {
    "i2v": "SkyReelsV2ImageToVideoPipeline",
    "diffusion-forcing": "SkyReelsV2DiffusionForcingImageToVideoPipeline",
}
#: generation settings an option or ``stillguard.json`` may set
SETTINGS = (
    "height", "width", "num_frames", "opt_num_frames", "num_inference_steps", "guidance_scale",
    "flow_shift", "condition_grad", "fps", "addnoise_condition", "ar_step",
)  # fmt: skip
#: memory switches (no effect on values; never saved)
SWITCHES = ("gradient_checkpointing", "vae_slicing")


def flavour_of(index: dict[str, Any], where: str) -> str:
    """The flavour a ``model_index.json`` names (its ``_class_name``).

    Raises:
        ModelError: a pipeline that takes no photo (SkyReels-V2 text-to-video) or another model.
    """
    name = str(index.get("_class_name", ""))
    if "SkyReelsV2" in name and "DiffusionForcing" in name:
        return "diffusion-forcing"  # the DF checkpoints serve text- and image-to-video alike
    if name == FLAVOURS["i2v"]:
        return "i2v"
    raise ModelError(
        f"{where} holds a {name or 'unnamed'} pipeline, not a SkyReels-V2 image-to-video or "
        "diffusion-forcing one (the text-to-video checkpoints take no photo)"
    )


def _index(model: str, folder: Path | None) -> dict[str, Any]:
    """The ``model_index.json`` of a local folder or of a hub id in the local cache (never
    downloaded; a missing one is :func:`~.._shared.folders.load_error`'s clear message)."""
    if folder is not None:
        return read_json(folder / "model_index.json")
    from huggingface_hub import hf_hub_download

    try:
        return read_json(Path(hf_hub_download(model, "model_index.json", local_files_only=True)))
    except (OSError, ValueError) as err:
        raise load_error(model, None, err, "SkyReels-V2") from err


def _pipeline_class(flavour: str) -> type:
    import diffusers

    return getattr(diffusers, FLAVOURS[flavour])


class SkyReelsLoading:
    """Constructors and ``save_pretrained`` of :class:`~.adapter.SkyReelsV2I2V` (a mixin)."""

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str = "",
        negative_prompt: str = "",
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        opt_num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        flow_shift: float | None = None,
        condition_grad: str | None = None,
        fps: int | None = None,
        addnoise_condition: float | None = None,
        ar_step: int | None = None,
        **unknown: Any,
    ) -> Any:
        """Load a hub id (local cache only) or a local ``save_pretrained`` folder.

        Settings left as ``None`` come from the folder's ``stillguard.json``, else from the
        pipeline's defaults; ``flow_shift`` replaces the scheduler's shift (the published
        folders keep the converter's 1.0, the model authors sample I2V at 5.0);
        ``condition_grad="first"`` limits the VAE gradient to the photo's latent frame (memory);
        ``fps``, ``addnoise_condition``, ``ar_step`` (only 0) are the diffusion-forcing options.

        Raises:
            InputError: an unknown option.
            ModelError: no weights, pickle-only weights, not a SkyReels-V2 I2V/DF folder, or no
                way to embed the prompt.
        """
        cls._check_settings(unknown)
        settings = dict(
            height=height, width=width, num_frames=num_frames, opt_num_frames=opt_num_frames,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
            flow_shift=flow_shift, condition_grad=condition_grad, fps=fps,
            addnoise_condition=addnoise_condition, ar_step=ar_step,
        )  # fmt: skip
        _, folder, src, _, _ = resolve_source(model, device, dtype, cogvideox_only=True)
        flavour = flavour_of(_index(model, folder), repr(model))
        fixed: dict[str, Any] = dict(text_encoder=None, tokenizer=None)
        if (
            flavour == "i2v"
        ):  # read from its JSON alone below (diffusers checks a given one's class)
            fixed["image_processor"] = None
        pipe, model_id, folder, src, device, dtype = open_pipeline(
            _pipeline_class(flavour), model, device, dtype, "SkyReels-V2", refuse_toy=True, **fixed
        )
        if flavour == "i2v":
            pipe.register_modules(image_processor=clip_image_processor(src))
        prompt_embeds, negative_prompt_embeds = umt5_prompt_pair(
            folder, src, prompt, negative_prompt, prompt_embeds, negative_prompt_embeds, device,
            dtype,
        )  # fmt: skip
        cls._switch(pipe, gradient_checkpointing, vae_slicing)
        return cls(
            pipe, model_id=model_id, prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            settings=merged_settings(folder, settings), device=device, dtype=dtype,
        )  # fmt: skip

    @classmethod
    def from_config(
        cls,
        folder: str | Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        seed: int = 0,
        **settings: Any,
    ) -> Any:
        """Every component from a config-only folder with random weights (seeded), or nothing
        allocated on ``device="meta"`` or under ``FakeTensorMode``; prompt embeddings are zeros
        ``(1, 512, text_dim)``; ``random_weights`` is True. ``settings`` may hold the memory
        switches of :meth:`from_pretrained`."""
        settings = dict(settings)
        switches = [bool(settings.pop(k, False)) for k in SWITCHES]
        cls._check_settings(settings)
        dtype, device, path = resolve_dtype(dtype), torch.device(device), Path(folder)
        flavour = flavour_of(read_json(path / "model_index.json"), str(path))
        pipe = config_pipeline(
            path, _pipeline_class(flavour), seed=seed, device=device, dtype=dtype,
            skip=("text_encoder", "tokenizer"), needed=("transformer", "vae", "scheduler"),
            what="a SkyReels-V2 image-to-video",
        )  # fmt: skip
        cls._switch(pipe, *switches)
        stored = {**read_settings(path), **{k: v for k, v in settings.items() if v is not None}}
        text_dim = pipe.transformer.config.text_dim
        zeros = torch.zeros(1, TEXT_TOKENS, text_dim, device=device, dtype=dtype)
        adapter = cls(
            pipe, model_id=config_model_id(stored, folder), prompt_embeds=zeros,
            negative_prompt_embeds=zeros, settings=stored, device=device, dtype=dtype,
        )  # fmt: skip
        adapter.random_weights = True
        return adapter

    @classmethod
    def tiny(
        cls,
        seed: int = 0,
        *,
        device: str | torch.device = "cpu",
        flavour: str = "i2v",
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
    ) -> Any:
        """32×48, 9 frames (3 latent frames), 4 blocks of 2×12 heads, prompt embeds (1, 512, 16).

        ``flavour``: ``"i2v"`` (CLIP + concat; the registry's tiny) or ``"diffusion-forcing"``
        (prefix frame, fps embedding). CFG is on (``guidance_scale=2``) so its code runs.
        """
        pipe, embeds = skyreels_pipe(seed, flavour)
        cls._switch(pipe, gradient_checkpointing, vae_slicing)
        settings = dict(
            height=HEIGHT, width=WIDTH, num_frames=FRAMES, num_inference_steps=2,
            guidance_scale=2.0,
        )  # fmt: skip
        return tiny_adapter(
            cls, pipe, device, prompt_embeds=embeds,
            negative_prompt_embeds=torch.zeros_like(embeds), settings=settings,
        )  # fmt: skip

    @staticmethod
    def _switch(pipe: Any, checkpointing: bool, slicing: bool) -> None:
        memory_switches(
            pipe, pipe.transformer, gradient_checkpointing=checkpointing, vae_slicing=slicing
        )

    @classmethod
    def _check_settings(cls, settings: dict[str, Any]) -> None:
        """Raise :class:`InputError` for option names that are not settings."""
        check_options("skyreels-v2-i2v", settings, SETTINGS)

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), prompt embeds and ``stillguard.json`` generation defaults."""
        prompt = {
            "prompt_embeds": self.prompt_embeds,
            "negative_prompt_embeds": self.negative_prompt_embeds,
        }
        keys = [k for k in SETTINGS if k != "ar_step"]
        save_pipeline(self, path, prompt, {k: getattr(self, k) for k in keys})
