"""Generation of the ``ltx-i2v`` adapter (a mixin): the pipeline's own ``__call__`` (posterior
sample, CFG, Euler) with the adapter's prompt tensors."""

from __future__ import annotations

from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_image


class LTXVideo(VideoGeneration):
    """``generate`` of :class:`~.adapter.LTXI2V`."""

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own sampling (posterior sample, CFG, Euler). ``(B,3,H,W)`` -> ``(B,F,3,H,W)``."""
        img = working_image(self, x)
        b = img.shape[0]
        (ne, pe), (nm, pm) = (t.chunk(2) for t in self._text(b, True))
        return run_pipeline(
            self,
            seed,
            image=img,
            prompt_embeds=pe,
            prompt_attention_mask=pm,
            negative_prompt_embeds=ne,
            negative_prompt_attention_mask=nm,
            height=self.height,
            width=self.width,
            num_frames=frames,
            frame_rate=self.frame_rate,
            num_inference_steps=steps,
            guidance_scale=self.guidance_scale,
            decode_timestep=self.decode_timestep,
            decode_noise_scale=self.decode_noise_scale,
        )
