"""Building the ``ltx2-i2v`` adapter (a mixin): from weights (hub id / local folder), from a
config-only folder (:class:`~.._shared.flow_load.FlowLoading`), tiny; saving.

The pipeline is opened without Gemma (``text_encoder``/``tokenizer``); the prompt tensors come
from the caller, the folder's ``prompt_embeds.safetensors`` or the folder's Gemma
(:mod:`.prompt`). Memory switches (not saved): ``gradient_checkpointing`` (the transformer's
blocks), ``vae_slicing`` (batch items one by one) and ``vae_tiling`` (diffusers' tiled encode: for
a photo wider or taller than the VAE's tile, 512 px, the tiles' overlaps are blended, so the
latent differs slightly from the untiled one, as with ``ltx-i2v``).
"""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from .._shared.flow_load import FlowLoading
from .._shared.load import SWITCHES, save_pipeline, tiny_adapter
from .prompt import PROMPT_KEYS, complete_prompt, embed_prompt, zero_prompt
from .settings import LTX2Settings
from .tiny import TINY_FRAMES, TINY_HEIGHT, TINY_WIDTH, tiny_ltx2_pipe

#: the tiny model's settings: the real guidance (CFG 3, audio 7, modality 3, rescale 0.7), STG
#: on its last block, no H.264 re-encode (PyAV is optional; tests/test_adapter_ltx2.py turns it on)
TINY_SETTINGS = dict(
    height=TINY_HEIGHT, width=TINY_WIDTH, num_frames=TINY_FRAMES, num_inference_steps=4,
    stg_blocks=[1], image_crf=0,
)  # fmt: skip


class LTX2Loading(FlowLoading):
    """``from_pretrained``, ``tiny``, ``from_config`` (:class:`~.._shared.flow_load.FlowLoading`)
    and ``save_pretrained`` of :class:`~.adapter.LTX2I2V`."""

    PIPELINE = "LTX2ImageToVideoPipeline"
    ABSENT = ("text_encoder", "tokenizer")
    complete_prompt = staticmethod(complete_prompt)
    s: LTX2Settings

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str = "",
        prompt_embeds: Tensor | None = None,
        prompt_attention_mask: Tensor | None = None,
        negative_prompt_embeds: Tensor | None = None,
        negative_prompt_attention_mask: Tensor | None = None,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        image_crf: int | None = None,
        codec: str | None = None,
        height: int | None = None,
        width: int | None = None,
        num_frames: int | None = None,
        opt_num_frames: int | None = None,
        num_inference_steps: int | None = None,
        guidance_scale: float | None = None,
        **settings: Any,
    ) -> Any:
        """Load a hub id (local cache only) or a ``save_pretrained`` folder (safetensors only).

        ``image_crf``: the pipeline's H.264 CRF (33; 0 = no re-encode); ``codec``:
        ``"straight-through"`` (default) or ``"skip"`` (:mod:`.codec`). These and the other fields
        of :class:`~.settings.LTX2Settings` (frame_rate, the STG/modality/audio guidance scales,
        use_cross_timestep, text_tokens, ...) override the folder's ``stillguard.json``, which
        overrides the pipeline's defaults (``None``: keep).

        Raises:
            InputError: an unknown option.
            ModelError: no weights, pickle-only weights, or no way to get prompt embeddings.
        """
        LTX2Settings.check_names(settings)
        settings.update(
            image_crf=image_crf, codec=codec, height=height, width=width, num_frames=num_frames,
            opt_num_frames=opt_num_frames, num_inference_steps=num_inference_steps,
            guidance_scale=guidance_scale,
        )  # fmt: skip
        settings.update(
            prompt_embeds=prompt_embeds,
            prompt_attention_mask=prompt_attention_mask,
            negative_prompt_embeds=negative_prompt_embeds,
            negative_prompt_attention_mask=negative_prompt_attention_mask,
        )
        tokens = int(settings.get("text_tokens") or LTX2Settings.text_tokens)
        return cls.from_options(
            model, device, dtype, settings, keys=PROMPT_KEYS, settings=None, what="LTX-2",
            prompt=prompt, embed=lambda opened: embed_prompt(opened, prompt, tokens),
            gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing,
            vae_tiling=vae_tiling,
        )  # fmt: skip

    @classmethod
    def from_config(
        cls,
        folder: Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        seed: int = 0,
        **options: Any,
    ) -> Any:
        """:meth:`FlowLoading.from_config <.._shared.flow_load.FlowLoading.from_config>`, with the
        option names checked (settings and memory switches)."""
        LTX2Settings.check_names({k: v for k, v in options.items() if k not in SWITCHES})
        return super().from_config(folder, device=device, dtype=dtype, seed=seed, **options)

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> Any:
        """32×64, 9 frames (3 latent frames of 8×16 tokens), 2 blocks, 6 prompt tokens (2 of them
        left padding); random weights; the H.264 re-encode off (``image_crf=0``)."""
        pipe, prompt = tiny_ltx2_pipe(seed)
        return tiny_adapter(
            cls, pipe, device, prompt=complete_prompt(prompt), settings=dict(TINY_SETTINGS)
        )

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        return zero_prompt(pipe, settings, dtype)

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), the prompt tensors, and ``stillguard.json`` (the settings)."""
        save_pipeline(self, path, self.prompt, self.s.to_dict())
