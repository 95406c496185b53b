"""Building the ``kandinsky5-i2v`` adapter (a mixin): from weights (hub id / local folder), from a
config-only folder (:class:`~.._shared.flow_load.FlowLoading`), tiny; saving.

The prompt tensors are the Qwen2.5-VL embeddings ``(1, L, 3584)`` (``L`` = the prompt's own length:
the pipeline does not pad, its ``cu_seqlens`` carry the length) and the pooled CLIP-L text vector
``(1, 768)``, positive and negative. They come, in order, from the caller, from the folder's
``prompt_embeds.safetensors``, or from the folder's two text encoders through the pipeline's own
``encode_prompt`` (once, without gradient; the encoders are dropped afterwards). The negative
prompt defaults to the pipeline's own (:data:`NEGATIVE_PROMPT`, what ``__call__`` encodes when
given none).
"""

from __future__ import annotations

import logging
from typing import Any

import torch
from torch import Tensor

from ...errors import ModelError
from .._shared.flow_load import FlowLoading
from .._shared.folders import PROMPT_FILE
from .._shared.load import Opened, save_pipeline, tiny_adapter
from .tiny import FRAMES, HEIGHT, WIDTH, tiny_kandinsky_pipe

logger = logging.getLogger(__name__)

PROMPT_KEYS = ("prompt_embeds_qwen", "prompt_embeds_clip", "negative_prompt_embeds_qwen",
               "negative_prompt_embeds_clip")  # fmt: skip
SETTINGS = ("height", "width", "num_frames", "opt_num_frames", "num_inference_steps",
            "guidance_scale", "flow_shift", "condition_sample")  # fmt: skip
ABSENT = ("text_encoder", "tokenizer", "text_encoder_2", "tokenizer_2")
#: ``Kandinsky5I2VPipeline.__call__``'s negative prompt when CFG is on and none is given
NEGATIVE_PROMPT = (
    "Static, 2D cartoon, cartoon, 2d animation, paintings, images, worst quality, low quality, "
    "ugly, deformed, walking backwards"
)
#: the pipeline's default ``max_sequence_length`` (Qwen tokens after the template)
TEXT_TOKENS = 512


def complete_prompt(p: dict[str, Tensor | None]) -> dict[str, Tensor]:
    """The four prompt tensors; missing negatives are zeros of the positive's shape (what a run
    without a text encoder can offer; the real pipeline would encode :data:`NEGATIVE_PROMPT`).

    Raises:
        ModelError: no positive Qwen embeddings or no pooled CLIP vector.
    """
    qwen, clip = p.get("prompt_embeds_qwen"), p.get("prompt_embeds_clip")
    if qwen is None or clip is None:
        raise ModelError("Kandinsky 5 needs prompt_embeds_qwen and prompt_embeds_clip")
    nq, nc = p.get("negative_prompt_embeds_qwen"), p.get("negative_prompt_embeds_clip")
    return {
        "prompt_embeds_qwen": qwen,
        "prompt_embeds_clip": clip,
        "negative_prompt_embeds_qwen": torch.zeros_like(qwen) if nq is None else nq,
        "negative_prompt_embeds_clip": torch.zeros_like(clip) if nc is None else nc,
    }


class KandinskyLoading(FlowLoading):
    """``from_pretrained``, ``tiny``, ``from_config`` (:class:`~.._shared.flow_load.FlowLoading`)
    and ``save_pretrained`` of :class:`~.adapter.Kandinsky5I2V`."""

    PIPELINE = "Kandinsky5I2VPipeline"
    ABSENT = ABSENT
    complete_prompt = staticmethod(complete_prompt)

    @classmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        prompt: str = "",
        negative_prompt: str = NEGATIVE_PROMPT,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        vae_tiling: bool = False,
        **options: Any,
    ) -> Any:
        """Load a hub id or a ``save_pretrained`` folder (safetensors only, never remote code).

        ``options``: the prompt tensors of :data:`PROMPT_KEYS`, and settings (:data:`SETTINGS`)
        overriding the folder's ``stillguard.json``.

        Raises:
            InputError: an unknown option.
            ModelError: no weights, pickle-only weights, or no way to get prompt embeddings.
        """
        return cls.from_options(
            model, device, dtype, options, keys=PROMPT_KEYS, settings=SETTINGS,
            what="Kandinsky 5", prompt=prompt,
            embed=lambda opened: _embed(opened, prompt, negative_prompt),
            gradient_checkpointing=gradient_checkpointing, vae_slicing=vae_slicing,
            vae_tiling=vae_tiling,
        )  # fmt: skip

    @classmethod
    def from_config(cls, folder: Any, **options: Any) -> Any:
        """:meth:`FlowLoading.from_config <.._shared.flow_load.FlowLoading.from_config>` (random
        weights, nothing allocated on ``"meta"``), marked ``random_weights``."""
        adapter = super().from_config(folder, **options)
        adapter.random_weights = True
        return adapter

    @classmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> Any:
        """32×48, 17 frames (5 latent frames of 2×3 tokens), 4 visual blocks of 2×8 heads, 6
        Qwen tokens; random weights. CFG on (``guidance_scale=5``, the real default)."""
        pipe, prompt = tiny_kandinsky_pipe(seed)
        settings = dict(height=HEIGHT, width=WIDTH, num_frames=FRAMES, num_inference_steps=2,
                        guidance_scale=5.0)  # fmt: skip
        return tiny_adapter(cls, pipe, device, prompt=prompt, settings=settings)

    @classmethod
    def zero_prompt(cls, pipe: Any, settings: dict[str, Any], dtype: torch.dtype) -> dict:
        """Zeros of the published shape: ``text_tokens`` (512, the pipeline's maximum) Qwen tokens
        × ``in_text_dim`` (3584), and the pooled CLIP-L vector (``in_text_dim2``, 768)."""
        tr = pipe.transformer.config
        tokens = int(settings.get("text_tokens", TEXT_TOKENS))
        return {
            "prompt_embeds_qwen": torch.zeros(1, tokens, tr.in_text_dim, dtype=dtype),
            "prompt_embeds_clip": torch.zeros(1, tr.in_text_dim2, dtype=dtype),
        }

    # ------------------------------------------------------------------ saving
    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors), the four prompt tensors, and ``stillguard.json``."""
        save_pipeline(self, path, self.prompt, {k: getattr(self, k) for k in SETTINGS})


def _embed(opened: Opened, prompt: str, negative_prompt: str) -> dict[str, Tensor]:
    """Embed ``prompt`` and ``negative_prompt`` once with the folder's Qwen2.5-VL and CLIP text
    encoders through the pipeline's ``encode_prompt`` (no gradient), then drop the encoders."""
    pipe, src = opened.pipe, opened.src
    index = pipe.load_config(src, local_files_only=True)
    missing = [k for k in ABSENT if not (index.get(k) or [None])[0]]
    if missing:
        raise ModelError(
            f"{src} has no {', '.join(missing)} to embed the prompt {prompt!r}: pass "
            f"{', '.join(PROMPT_KEYS[:2])} (and the negative ones), or use a folder whose "
            f"{PROMPT_FILE} holds them"
        )
    import diffusers

    try:
        loaded = diffusers.DiffusionPipeline.from_pretrained(
            src, transformer=None, vae=None, scheduler=None, dtype=opened.dtype,
            use_safetensors=True, local_files_only=True,
        )  # fmt: skip
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot load the text encoders of {src}: {err}") from err
    for k in ABSENT:
        setattr(pipe, k, getattr(loaded, k))
    pipe.text_encoder.to(opened.device)
    pipe.text_encoder_2.to(opened.device)
    out: dict[str, Tensor] = {}
    try:
        with torch.no_grad():
            for pre, text in (("", prompt), ("negative_", negative_prompt)):
                qwen, clip, _ = pipe.encode_prompt(
                    text, max_sequence_length=TEXT_TOKENS, device=opened.device, dtype=opened.dtype
                )
                out.update({f"{pre}prompt_embeds_qwen": qwen, f"{pre}prompt_embeds_clip": clip})
    finally:
        for k in ABSENT:
            setattr(pipe, k, None)
    logger.info("embedded the prompt with Qwen2.5-VL and CLIP and dropped the text encoders")
    return out
