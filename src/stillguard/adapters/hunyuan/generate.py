"""Generation of the ``hunyuan-i2v`` adapter (a mixin): the pipeline's own ``__call__`` with the
precomputed prompt (the LLaVA text-image path is not recomputed from the photo; see the family's
docstring)."""

from __future__ import annotations

from torch import Tensor

from .._shared.generate import VideoGeneration, run_pipeline, working_image


class HunyuanVideo(VideoGeneration):
    """``generate`` of :class:`~.adapter.HunyuanI2V`."""

    def _generate_video(self, x: Tensor, seed: int, frames: int, steps: int) -> Tensor:
        """The pipeline's own sampling with the precomputed prompt. ``(B,3,H,W)`` -> ``(B,F,3,H,W)``
        with ``F = num_frames`` (the pipeline is asked for ``F + 4`` under latent concat)."""
        img = working_image(self, x)
        b = img.shape[0]
        pe, pm, pp = self._text(b)
        negative: dict[str, Tensor] = {}
        if self.true_cfg_scale > 1:
            ne, nm, npool = self._text(b, True)
            negative = dict(
                negative_prompt_embeds=ne,
                negative_prompt_attention_mask=nm,
                negative_pooled_prompt_embeds=npool,
            )
        return run_pipeline(
            self,
            seed,
            image=img,
            prompt_embeds=pe,
            prompt_attention_mask=pm,
            pooled_prompt_embeds=pp,
            **negative,
            height=self.height,
            width=self.width,
            num_frames=frames + self.drop,
            num_inference_steps=steps,
            guidance_scale=self.guidance_scale,
            true_cfg_scale=self.true_cfg_scale,
        )
