"""The generation settings of ``cosmos2-i2v``: the ``__call__`` defaults of diffusers 0.42.1
``Cosmos2VideoToWorldPipeline`` (704×1280, 93 frames, 35 steps, guidance 7 applied as
``pred + 7·(pred − uncond)``, 16 fps, ``sigma_conditioning`` 1e-4), overridden by a folder's
``stillguard.json`` and by options."""

from __future__ import annotations

from dataclasses import dataclass

from .._shared.settings import FamilySettings, one_of
from .guardrail import GUARDRAILS

SAMPLE_MODES = ("sample", "mode")


@dataclass
class Cosmos2Settings(FamilySettings):
    """``condition_sample``: the posterior ``"sample"`` (the pipeline's draw) or its ``"mode"``;
    ``guardrail``: see :mod:`.guardrail`; ``opt_num_frames``: frames while optimising (``None``:
    ``num_frames``); ``text_tokens``: T5 tokens when the prompt is embedded (512)."""

    TARGET = "cosmos2-i2v"

    height: int = 704
    width: int = 1280
    num_frames: int = 93
    opt_num_frames: int | None = None
    fps: int = 16
    num_inference_steps: int = 35
    guidance_scale: float = 7.0
    sigma_conditioning: float = 1e-4
    condition_sample: str = "sample"
    guardrail: str = "cosmos"
    text_tokens: int = 512

    def check(self) -> None:
        self.condition_sample = one_of(
            self.TARGET, "condition_sample", self.condition_sample, SAMPLE_MODES
        )
        self.guardrail = one_of(self.TARGET, "guardrail", self.guardrail, GUARDRAILS)
