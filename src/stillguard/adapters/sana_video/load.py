"""Building the ``sana-video-i2v`` adapter (a mixin): from weights (hub id / local folder), from a
config-only folder (:class:`~.._shared.flow_load.FlowLoading`), tiny; saving.

Prompt embeddings (Gemma-2 2B, 300 tokens, the pipeline's "complex human instruction" included) are
never computed here: the photo never enters them. They come from the caller
(``prompt_embeds``/``prompt_attention_mask`` and the negative pair, as the pipeline's
``encode_prompt`` returns them) or from a folder's ``prompt_embeds.safetensors``. Memory switches:
``gradient_checkpointing`` and ``vae_slicing``; ``vae_tiling`` is refused (see the family's
docstring).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.flow_load import FlowLoading
from .._shared.folders import PROMPT_FILE
from .._shared.load import save_pipeline, tiny_adapter
from .._shared.wan_conditioning import refuse_tiling
from .tiny import SETTINGS as TINY_SETTINGS
from .tiny import tiny_pipe

PROMPT_KEYS = ("prompt_embeds", "prompt_attention_mask", "negative_prompt_embeds",
               "negative_prompt_attention_mask")  # fmt: skip
SETTINGS = ("height", "width", "num_frames", "opt_num_frames", "num_inference_steps",
            "guidance_scale", "linear_map")  # fmt: skip
ABSENT = ("text_encoder", "tokenizer")
#: the pipeline's ``max_sequence_length`` (Gemma tokens)
TEXT_TOKENS = 300


def complete_prompt(p: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """A missing mask is ones; a missing negative prompt zeros with mask ones.

    Raises:
        ModelError: no ``prompt_embeds``.
    """
    pe = p.get("prompt_embeds")
    if pe is None:
        raise ModelError("SANA-Video needs prompt_embeds")
    ones = torch.ones(pe.shape[:2], dtype=torch.long, device=pe.device)
    defaults = dict(zip(PROMPT_KEYS, (pe, ones, torch.zeros_like(pe), ones), strict=True))
    return {k: defaults[k] if p.get(k) is None else p[k] for k in PROMPT_KEYS}


class SanaLoading(FlowLoading):
    """``from_pretrained``, ``tiny``, ``from_config`` and ``save_pretrained`` of
    :class:`~.adapter.SanaVideoI2V`."""

    PIPELINE = "SanaImageToVideoPipeline"
    ABSENT = ABSENT
    complete_prompt = staticmethod(complete_prompt)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        **options: Any,
    ) -> Any:
        """Load a hub id or a ``save_pretrained`` folder (safetensors only, never remote code).

        ``options``: the prompt tensors of :data:`PROMPT_KEYS` and the settings of
        :data:`SETTINGS` (overriding the folder's ``stillguard.json``).

        Raises:
            InputError: an unknown option, or ``vae_tiling``.
            ModelError: no weights, pickle-only weights, or no prompt embeddings.
        """
        refuse_tiling("sana-video-i2v", vae_tiling)
        return cls.from_options(
            model, device, dtype, options, keys=PROMPT_KEYS, settings=SETTINGS,
            required=("prompt_embeds",), what="SANA-Video",
            missing="stillguard does not run SANA-Video's Gemma-2 text encoder; pass "
            "prompt_embeds and prompt_attention_mask (and the negative pair) as the pipeline's "
            f"encode_prompt returns them, or a folder whose {PROMPT_FILE} has them",
            gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing,
            vae_tiling=False,
        )  # fmt: skip

    @classmethod
    def from_config(cls, folder: str | Any, **options: Any) -> Any:
        """As :meth:`FlowLoading.from_config` (random weights, ``random_weights`` True), refusing
        ``vae_tiling``."""
        refuse_tiling("sana-video-i2v", options.get("vae_tiling"))
        adapter = super().from_config(folder, **options)
        adapter.random_weights = True
        return adapter

    @classmethod
    def tiny(
        cls, seed: int = 0, *, device: str | torch.device = "cpu", linear_map: str = "kernel"
    ) -> Any:
        """64×96, 9 frames (3 latent frames of 4×6 tokens), 2 blocks of 2×12 heads, 6 text tokens
        (2 of them padding); random weights; CFG 6 (the real default). ``linear_map``: which map
        the capture records (see :mod:`.capture`)."""
        pipe, prompt = tiny_pipe(seed)
        settings = dict(TINY_SETTINGS, linear_map=linear_map)
        return tiny_adapter(cls, pipe, device, prompt=complete_prompt(prompt), settings=settings)

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        """Zeros ``(1, 300, 2304)`` (Gemma-2 2B, the pipeline's 300 tokens, or the setting
        ``text_tokens``)."""
        n = int(settings.get("text_tokens", TEXT_TOKENS))
        dim = pipe.transformer.config.caption_channels
        return {"prompt_embeds": torch.zeros(1, n, dim, dtype=dtype)}

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), the prompt tensors, and ``stillguard.json``."""
        save_pipeline(self, path, self.prompt, {k: getattr(self, k) for k in SETTINGS})

    def describe(self) -> dict[str, Any]:
        return {**super().describe(), "linear_map": self.linear_map}
