"""The Open-Sora family: the ``open-sora-1.2`` adapter, on stillguard's own STDiT3 + VAE.

Target: hpcaitech/Open-Sora v1.2 (STDiT3-XL/2: README "1.1B", 1,207,643,972 parameters counted;
video VAE "384M": 393,341,007 counted; rectified flow), one of the three models of Anti-I2V
(arXiv 2603.24570). Open-Sora is not in diffusers: the networks are re-implemented in
:mod:`.nets` with the official parameter names, so the official safetensors load with
``strict=True`` (see :meth:`OpenSora12.official_model`). Weights: safetensors only, from a local
folder (layout in :mod:`.pipeline`) or the local Hugging Face cache, never downloaded here, never
pickles or remote code.

Files: :mod:`.adapter` (the differentiable pieces the loss sees), :mod:`.load` (from weights, from
a config-only folder, official modules, tiny; saving), :mod:`.pipeline` (the folder layout: build,
load, save, the T5 prompt), :mod:`.rflow` (v1.2's rectified-flow sampler), :mod:`.generate` (the
official sampling), :mod:`.capture` (layer names and the recording processor of STDiT3),
:mod:`.tiny` (the tiny random model), :mod:`.nets` (STDiT3, the video VAE and their layers).

Choices where the official pipeline leaves room (each one ours, stated):
    * conditioning = v1.2's I2V ``mask_strategy "0"``: latent frame 0 is the photo's latent, held
      clean, with ``x_mask`` False there (timestep-0 adaLN);
    * :meth:`encode` uses the posterior *means* of both VAEs (the pipeline samples them);
      :meth:`generate` samples them from the seeded generator;
    * ``first_latent`` is the temporal VAE's raw latent; ``image_latents`` are the normalised
      latent ``(z − shift)/scale`` repeated over all latent frames (the static video, also the
      default ``z0`` of :meth:`denoise`);
    * :meth:`sample_timesteps`: logit-normal(0, 1) times 1000 then the timestep transform at the
      working size (the v1.2 training recipe); :meth:`denoise` is conditional only (no CFG);
      :meth:`rollout` applies CFG against the model's learned null caption (``y_embedding``);
    * text: T5 features ``(1, 300, 4096)`` + mask, embedded once at load time (a local T5, or
      precomputed ``prompt_embeds.safetensors``); T5-XXL is never kept; without any, a zero
      embedding with an all-True mask is used (a stand-in, not T5's empty prompt);
    * :meth:`rollout` and :meth:`generate` follow ``RFLOW.sample`` step for step, including its
      re-noising when the first transformed timestep rounds above 1000 (see
      :func:`.rflow.sample`); rollout draws that noise from a fixed seed.

Papers' layers mapped onto STDiT3 (28 spatial + 28 temporal blocks, alternating):
    * Vid-Freeze, decoupled form: ``temporal_blocks.{i}.attn`` (``attention-temporal``,
      ``T×T`` maps per position); ``spatial_blocks.{i}.attn`` are ``attention-spatial``;
    * Anti-I2V: a "block" is a spatial+temporal pair, recorded at ``temporal_blocks.{i}`` (the
      pair's output); the method's ``irc_ref=2`` (0-based; the paper's "layer 3") pulls pairs
      25..27 (the last three) onto pair 2; IRA uses every pair plus the VAE layers
      (``layer_names("vae")``: SDXL-VAE down blocks, then the temporal encoder's levels).
"""

from .adapter import OpenSora12

__all__ = ["OpenSora12"]
