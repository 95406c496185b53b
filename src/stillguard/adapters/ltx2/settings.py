"""The generation settings of ``ltx2-i2v``: the pipeline's ``__call__`` defaults (diffusers 0.42.1
``LTX2ImageToVideoPipeline``), overridden by a folder's ``stillguard.json`` and by options.

Guidance as the pipeline computes it, on the x0 predictions: CFG ``(g − 1)·(cond − uncond)``,
spatio-temporal guidance (STG) ``s·(cond − perturbed)`` with the self-attention of
``stg_blocks`` skipped, modality isolation ``(m − 1)·(cond − isolated)`` with the audio↔video
cross-attention cut, then ``guidance_rescale``; the audio stream has its own four scales.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any

from ...errors import InputError
from ...registry import close_matches
from .codec import CODECS


@dataclass
class LTX2Settings:
    """Working size, sampler and guidance of a run (pipeline defaults; see the module docstring).

    ``image_crf``: the H.264 CRF the pipeline re-encodes the photo at (33 for Gemma-3 text
    encoders, 0 = no re-encode); ``codec``: how the attack path treats that re-encode
    (:mod:`.codec`); ``opt_num_frames``: frames while optimising (``None``: ``num_frames``);
    ``text_tokens``: Gemma tokens when the prompt is embedded (the pipeline's 1024).
    """

    height: int = 512
    width: int = 768
    num_frames: int = 121
    opt_num_frames: int | None = None
    frame_rate: float = 24.0
    num_inference_steps: int = 30
    guidance_scale: float = 3.0
    stg_scale: float = 1.0
    stg_blocks: list[int] = field(default_factory=lambda: [28])
    modality_scale: float = 3.0
    guidance_rescale: float = 0.7
    audio_guidance_scale: float = 7.0
    audio_stg_scale: float = 1.0
    audio_modality_scale: float = 3.0
    audio_guidance_rescale: float = 0.7
    decode_timestep: float = 0.0
    decode_noise_scale: float | None = None
    use_cross_timestep: bool = True
    image_crf: int = 33
    codec: str = "straight-through"
    text_tokens: int = 1024

    @classmethod
    def from_dict(cls, values: dict[str, Any]) -> LTX2Settings:
        """The settings among ``values`` (other keys, e.g. ``stillguard.json``'s ``"adapter"``,
        are ignored), checked."""
        names = {f.name for f in dataclasses.fields(cls)}
        s = cls(**{k: v for k, v in values.items() if k in names and v is not None})
        s.stg_blocks = [int(b) for b in s.stg_blocks]
        if s.codec not in CODECS:
            raise InputError(f"ltx2-i2v codec must be one of {CODECS}, got {s.codec!r}")
        if int(s.image_crf) < 0 or int(s.image_crf) > 51:
            raise InputError(f"image_crf must be in 0..51 (H.264), got {s.image_crf}")
        s.image_crf = int(s.image_crf)
        return s

    @classmethod
    def check_names(cls, options: dict[str, Any]) -> None:
        """Refuse option names that are not settings."""
        names = [f.name for f in dataclasses.fields(cls)]
        unknown = sorted(set(options) - set(names))
        if unknown:
            raise InputError(
                f"unknown ltx2-i2v option(s) {unknown}: {close_matches(unknown[0], names)}"
            )

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)
