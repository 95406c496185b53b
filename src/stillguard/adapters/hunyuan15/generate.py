"""Generation of the ``hunyuan15-i2v`` adapter (a mixin): the pipeline's own ``__call__`` on the
8-bit working-size photo as a PIL image (the pipeline takes nothing else), with the adapter's
prompt tensors (positive and negative: the guider runs CFG). Each photo of a batch is one pipeline
call with the same seed, so a photo's video does not depend on its place in the batch."""

from __future__ import annotations

import torch
from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_photos


class Hunyuan15Video(VideoGeneration):
    """``generate`` of :class:`~.adapter.HunyuanVideo15I2V`."""

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own sampling. ``(B,3,H,W)`` -> ``(B,F,3,height,width)`` in [0, 1]."""
        prompt = {
            k: v.to(self.dtype) if v.is_floating_point() else v for k, v in self.prompt.items()
        }
        videos = [
            run_pipeline(
                self, seed, image=photo, num_frames=frames, num_inference_steps=steps, **prompt
            )  # fmt: skip
            for photo in working_photos(self, x)
        ]
        return torch.cat(videos)
