"""The generation settings of ``ltx2-i2v``: the pipeline's ``__call__`` defaults (diffusers 0.42.1
``LTX2ImageToVideoPipeline``), overridden by a folder's ``stillguard.json`` and by options.

Guidance as the pipeline computes it, on the x0 predictions: CFG ``(g − 1)·(cond − uncond)``,
spatio-temporal guidance (STG) ``s·(cond − perturbed)`` with the self-attention of
``stg_blocks`` skipped, modality isolation ``(m − 1)·(cond − isolated)`` with the audio↔video
cross-attention cut, then ``guidance_rescale``; the audio stream has its own four scales.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ...errors import InputError
from .._shared.settings import FamilySettings, one_of
from .codec import CODECS


@dataclass
class LTX2Settings(FamilySettings):
    """Working size, sampler and guidance of a run (pipeline defaults; see the module docstring).

    ``image_crf``: the H.264 CRF the pipeline re-encodes the photo at (33 for Gemma-3 text
    encoders, 0 = no re-encode); ``codec``: how the attack path treats that re-encode
    (:mod:`.codec`); ``opt_num_frames``: frames while optimising (``None``: ``num_frames``);
    ``text_tokens``: Gemma tokens when the prompt is embedded (the pipeline's 1024).
    """

    TARGET = "ltx2-i2v"

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

    def check(self) -> None:
        self.stg_blocks = [int(b) for b in self.stg_blocks]
        self.codec = one_of(self.TARGET, "codec", self.codec, CODECS)
        if not 0 <= int(self.image_crf) <= 51:
            raise InputError(f"image_crf must be in 0..51 (H.264), got {self.image_crf}")
        self.image_crf = int(self.image_crf)
