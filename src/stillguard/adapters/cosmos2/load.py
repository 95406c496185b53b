"""Building the ``cosmos2-i2v`` adapter (a mixin): from weights, from a config-only folder, tiny;
saving.

Every constructor loads the pipeline with the guardrail stand-in (:mod:`.guardrail`: the real
checker is built only when ``generate`` needs it) and without T5. The prompt embeddings come from
the caller, the folder's ``prompt_embeds.safetensors``, or the folder's T5 (embedded once, then
dropped; the negative prompt is the pipeline's long default negative prompt). Memory switches
(not saved): ``gradient_checkpointing`` (the transformer's blocks) and ``vae_slicing``;
``vae_tiling`` is refused for the reason ``wan-i2v`` gives (the same Wan VAE: blended tiles change
the latent, and under autograd every tile's activations are kept anyway).
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.build import config_pipeline
from .._shared.folders import load_error, read_settings
from .._shared.load import (
    Opened,
    config_model_id,
    memory_switches,
    merged_settings,
    prompt_pair,
    resolve_dtype,
    resolve_source,
    save_pipeline,
    tiny_adapter,
)
from .._shared.wan_conditioning import refuse_tiling
from .guardrail import stand_in
from .settings import Cosmos2Settings
from .tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, tiny_cosmos2_pipe

logger = logging.getLogger(__name__)

#: the tiny model's settings: the real guidance (7) and posterior sample; the guardrail off (a
#: random test model; tests/test_adapter_cosmos2.py checks the "cosmos" path's message)
TINY_SETTINGS = dict(
    height=TINY_HEIGHT, width=TINY_WIDTH, num_frames=TINY_FRAMES, num_inference_steps=4,
    guardrail="off",
)  # fmt: skip


class Cosmos2Loading:
    """Constructors and ``save_pretrained`` of :class:`~.adapter.Cosmos2I2V` (a mixin)."""

    s: Cosmos2Settings
    pipe: Any
    prompt_embeds: Tensor
    negative_prompt_embeds: Tensor

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str = "",
        prompt_embeds: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        guardrail: str | None = None,
        condition_sample: str | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        opt_num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        **settings: Any,
    ) -> Any:
        """Load a hub id (local cache only) or a ``save_pretrained`` folder (safetensors only).

        ``guardrail``: ``"cosmos"`` (default) or ``"off"`` (:mod:`.guardrail`);
        ``condition_sample``: ``"sample"`` (default) or ``"mode"``. These and the other fields
        of :class:`~.settings.Cosmos2Settings` (fps, sigma_conditioning, text_tokens) override the
        folder's ``stillguard.json``, which overrides the pipeline's defaults (``None``: keep).

        Raises:
            InputError: an unknown option, or ``vae_tiling``.
            ModelError: no weights, pickle-only weights, or no way to get prompt embeddings.
        """
        Cosmos2Settings.check_names(settings)
        refuse_tiling("cosmos2-i2v", vae_tiling)
        settings.update(
            guardrail=guardrail, condition_sample=condition_sample, height=height, width=width,
            num_frames=num_frames, opt_num_frames=opt_num_frames,
            num_inference_steps=num_inference_steps, guidance_scale=guidance_scale,
        )  # fmt: skip
        opened = _open(model, device, dtype)
        stored = merged_settings(opened.folder, settings)
        tokens = int(stored.get("text_tokens") or Cosmos2Settings.text_tokens)
        pe, ne = prompt_pair(
            opened.folder, prompt, prompt_embeds, negative_prompt_embeds,
            lambda: _embed_prompt(opened, prompt, tokens),
        )  # fmt: skip
        memory_switches(opened.pipe, opened.pipe.transformer,
                        gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing)  # fmt: skip
        return cls(
            opened.pipe, model_id=opened.model_id, prompt_embeds=pe, negative_prompt_embeds=ne,
            settings=stored, device=opened.device, dtype=opened.dtype,
        )  # fmt: skip

    @classmethod
    def from_config(
        cls,
        folder: str | Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        seed: int = 0,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        **settings: Any,
    ) -> Any:
        """Every component of a config-only folder with random weights from ``seed`` (nothing
        allocated on ``device="meta"`` or under ``FakeTensorMode``), the guardrail stand-in, zero
        prompt embeddings ``(1, 512, 1024)`` (T5-11B's width, or the setting ``text_tokens``)."""
        from diffusers import Cosmos2VideoToWorldPipeline

        Cosmos2Settings.check_names(settings)
        refuse_tiling("cosmos2-i2v", vae_tiling)
        dtype, device = resolve_dtype(dtype), torch.device(device)
        pipe = config_pipeline(
            folder, Cosmos2VideoToWorldPipeline, seed=seed, device=device, dtype=dtype,
            skip=("text_encoder", "tokenizer", "safety_checker"),
            needed=("transformer", "vae", "scheduler"), what="a Cosmos2VideoToWorld",
            given={"safety_checker": stand_in()},
        )  # fmt: skip
        memory_switches(pipe, pipe.transformer, gradient_checkpointing=gradient_checkpointing,
                        vae_slicing=vae_slicing)  # fmt: skip
        stored = {
            **read_settings(Path(folder)),
            **{k: v for k, v in settings.items() if v is not None},
        }
        tokens = int(stored.get("text_tokens") or Cosmos2Settings.text_tokens)
        width = pipe.transformer.config.text_embed_dim
        zeros = torch.zeros(1, tokens, width, device=device, dtype=dtype)
        return cls(
            pipe, model_id=config_model_id(stored, folder), prompt_embeds=zeros,
            negative_prompt_embeds=zeros, settings=stored, device=device, dtype=dtype,
        )  # fmt: skip

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> Any:
        """32×64, 9 frames (3 latent frames of 2×4 tokens), 2 blocks of 2×16 heads, prompt embeds
        (1, 6, 32), zero negative; random weights; the guardrail off (a test model)."""
        pipe, embeds = tiny_cosmos2_pipe(seed)
        return tiny_adapter(
            cls, pipe, device, prompt_embeds=embeds, negative_prompt_embeds=None,
            settings=dict(TINY_SETTINGS),
        )  # fmt: skip

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors; the guardrail is not saved: ``[null, null]`` in
        ``model_index.json``), prompt embeds and ``stillguard.json``."""
        guard = self.pipe.safety_checker
        self.pipe.register_modules(safety_checker=None)
        try:
            prompt = {"prompt_embeds": self.prompt_embeds,
                      "negative_prompt_embeds": self.negative_prompt_embeds}  # fmt: skip
            save_pipeline(self, path, prompt, self.s.to_dict())
        finally:
            self.pipe.register_modules(safety_checker=guard)


def _open(model: str, device: str | torch.device, dtype: torch.dtype | str) -> Opened:
    """The pipeline from the transformer, VAE and scheduler of a hub id (local cache only) or
    folder (safetensors only), with the guardrail stand-in and no T5.

    Component by component, not ``Cosmos2VideoToWorldPipeline.from_pretrained``: diffusers 0.42.1
    refuses a folder whose ``model_index.json`` names the guardrail's package
    (``["cosmos_guardrail", "CosmosSafetyChecker"]``) unless that package is installed and
    imported, even when a checker is passed in.
    """
    from diffusers import (
        AutoencoderKLWan,
        Cosmos2VideoToWorldPipeline,
        CosmosTransformer3DModel,
        FlowMatchEulerDiscreteScheduler,
    )

    model_id, folder, src, device, dtype = resolve_source(model, device, dtype, cogvideox_only=True)
    weights = dict(dtype=dtype, use_safetensors=True, local_files_only=True)
    try:
        parts = dict(
            transformer=CosmosTransformer3DModel.from_pretrained(src, subfolder="transformer", **weights),
            vae=AutoencoderKLWan.from_pretrained(src, subfolder="vae", **weights),
            scheduler=FlowMatchEulerDiscreteScheduler.from_pretrained(
                src, subfolder="scheduler", local_files_only=True
            ),
        )  # fmt: skip
    except (OSError, ValueError) as err:
        raise load_error(model, folder, err, "Cosmos-Predict2") from err
    pipe = Cosmos2VideoToWorldPipeline(text_encoder=None, tokenizer=None,
                                       safety_checker=stand_in(), **parts)  # fmt: skip
    pipe.to(device)
    return Opened(pipe, model_id, folder, src, device, dtype)


def _embed_prompt(opened: Opened, prompt: str, tokens: int) -> tuple[Tensor, Tensor]:
    """``prompt`` and the pipeline's default negative prompt through the folder's T5 (no
    gradient), as ``encode_prompt`` embeds them (padding zeroed); T5 is dropped afterwards."""
    from transformers import AutoTokenizer, T5EncoderModel

    pipe, src = opened.pipe, opened.src
    if not (pipe.load_config(src).get("text_encoder") or [None])[0]:
        raise ModelError(
            f"{src} has no text encoder to embed the prompt {prompt!r}: pass prompt_embeds=... "
            "(T5 embeddings, (1, 512, 1024) for the 2B model), or use a folder whose "
            "prompt_embeds.safetensors holds them"
        )
    try:
        pipe.tokenizer = AutoTokenizer.from_pretrained(src, subfolder="tokenizer",
                                                       local_files_only=True)  # fmt: skip
        pipe.text_encoder = T5EncoderModel.from_pretrained(
            src, subfolder="text_encoder", dtype=opened.dtype, use_safetensors=True,
            local_files_only=True,
        ).to(opened.device)  # fmt: skip
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the T5 text encoder of {src}: {err}") from err
    try:
        with torch.no_grad():
            pe, ne = pipe.encode_prompt(prompt, do_classifier_free_guidance=True,
                                        max_sequence_length=tokens, device=opened.device)  # fmt: skip
    finally:
        pipe.tokenizer = pipe.text_encoder = None
    logger.info("embedded the prompt with T5 and dropped the text encoder")
    return pe, ne
