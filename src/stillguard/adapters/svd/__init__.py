"""The Stable Video Diffusion family: the ``svd`` adapter around diffusers'
``StableVideoDiffusionPipeline``.

Target: stabilityai/stable-video-diffusion-img2vid-xt (SVD, arXiv 2311.15127), a UNet with spatial
and temporal attention, EDM preconditioning and v-prediction, conditioned on a CLIP image
embedding and on the VAE latent of the image; also its 14-frame sibling
stabilityai/stable-video-diffusion-img2vid. Needs diffusers and transformers (CLIP); weights load as
safetensors only, from the local cache only, never with remote code.

Files: :mod:`.adapter` (the differentiable pieces the loss sees: CLIP and VAE conditioning, the
EDM-preconditioned denoiser), :mod:`.load` (from weights, from a config-only folder, tiny; saving),
:mod:`.capture` (layer names, spatial and temporal attention), :mod:`.generate` (the pipeline's own
sampling), :mod:`.tiny` (the tiny random model).

Choices where the pipeline leaves room:
    * CLIP branch: the pipeline's PIL path redone in torch on the working-size image: its
      antialiasing Gaussian blur + bicubic resize to the CLIP size, then the feature extractor's
      mean/std. (The pipeline does not resize *tensor* inputs at all, so :meth:`SVD.generate`
      hands it 8-bit PIL images, as a saved photo would be.)
    * VAE branch: ``noise_aug_strength`` noise is drawn from the ``generator`` given to
      :meth:`SVD.encode`; without one no noise is added (deterministic), while
      ``added_time_ids`` still report the configured strength, as the model expects.
    * Timesteps are the UNet's own unit ``t = 0.25·ln σ``; :meth:`SVD.sample_timesteps` draws
      ``ln σ ~ N(0.7, 1.6²)`` (EDM log-normal, clamped to the scheduler's σ range).
    * ``opt_num_frames`` (default ``num_frames``) is the frame count of :meth:`encode`,
      :meth:`latent_shape` and the default ``z0``; :meth:`generate` uses ``num_frames``.
"""

from .adapter import P_MEAN, P_STD, SVD

__all__ = ["P_MEAN", "P_STD", "SVD"]
