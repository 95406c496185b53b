"""Generation of the ``svd`` adapter (a mixin): the pipeline's own sampling, on the 8-bit photo."""

from __future__ import annotations

from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_photos


class SVDVideo(VideoGeneration):
    """``generate`` of the SVD adapter."""

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own sampling on the 8-bit working-size image (PIL, as a user would).

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> video ``(B,F,3,height,width)`` in [0,1].
        """
        return run_pipeline(
            self,
            seed,
            image=working_photos(self, x),
            height=self.height,
            width=self.width,
            num_frames=frames,
            num_inference_steps=steps,
            min_guidance_scale=self.min_guidance_scale,
            max_guidance_scale=self.max_guidance_scale,
            fps=self.fps,
            motion_bucket_id=self.motion_bucket_id,
            noise_aug_strength=self.noise_aug_strength,
            decode_chunk_size=frames,
        )
