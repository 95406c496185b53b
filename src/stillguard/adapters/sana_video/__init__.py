"""The SANA-Video family: the ``sana-video-i2v`` adapter around diffusers'
``SanaImageToVideoPipeline``.

Target: Efficient-Large-Model/SANA-Video_2B_480p_diffusers (2.06B: 20 blocks of 20×112 **linear**
self-attention, Gemma-2 cross-attention and a temporal conv feed-forward, patch 1×2×2, with the
Wan2.1 VAE; shipped config ``sana-video-2b-480p``). The 720p model (LTX-2 VAE, patch 1) is a config
variant, not shipped. How the photo conditions the model (``pipeline_sana_video_i2v.py``): its
1-frame VAE encode (posterior **mode**), normalised with the Wan ``latents_mean/std``, **replaces
latent frame 0**, whose tokens get timestep 0 (``t·(1 − mask)`` per token); only frames 1+ are
stepped. The gradient reaches the photo through the VAE encoder and, via frame 0, through every
block.

**What the attack does not reach**: the Gemma-2 prompt, including the " motion score: N." the
model card appends to it (a low score asks for little motion by itself, a high one for much: text
the photo cannot change). Prompt embeddings are precomputed (the photo never enters them).

Vid-Freeze: the motion attention is ``attn1``, linear attention over the video tokens
(capability ``attention-joint``, no text keys). It has no softmax: :mod:`.capture` records the
attention map it implies, ``linear_map="kernel"`` (default, rows sum to 1) or ``"implied"`` (the
exact operator, RoPE included): **using Vid-Freeze on linear attention is our extension beyond
the paper**; the two maps and what separates them are defined there. At 480×832×81 there are
21·30·52 = 32,760 tokens: ``sampled`` rows or ``pooled`` (exact frame aggregates for linear
attention) on a real model. Anti-I2V: IRC pulls ``transformer_blocks[-3:]`` onto
``transformer_blocks.2``; IRA uses every block and ``vae.encoder.down_blocks.*``.

Choices where the pipeline leaves room:
    * ``t = 1000·σ``, ``x_σ = (1−σ)·z0 + σ·ε``, ``pred`` = velocity (the scheduler's
      ``flow_prediction``: ``x0 = x_σ − σ·pred``); :meth:`sample_timesteps` shifts a uniform σ by
      ``flow_shift`` (8), the sampler's own shift; frame 0 is excluded from the training loss
      (its target is the detached prediction), as it is never stepped;
    * :meth:`denoise` is conditional only; :meth:`rollout` steps a private copy of the pipeline's
      DPM-Solver++ (flow sigmas) with CFG 6 batched, frames 1+ only;
    * ``generate`` passes the 8-bit working-size photo (PIL), one call per photo, same seed;
      resolution binning as the pipeline does it for the real model (identity at 480×832);
    * the working size must be a multiple of 32 (the pipeline's rule);
    * memory switches: ``gradient_checkpointing`` (exact), ``vae_slicing`` (exact); ``vae_tiling``
      is refused: the Wan VAE's tiling blends 256-px tiles at a 192-px stride (the photo's latent
      changes) and under autograd keeps every tile's activations.

Files: :mod:`.adapter` (the differentiable pieces), :mod:`.generate` (the differentiable rollout,
the pipeline's own sampling), :mod:`.capture` (layer names, the linear-attention map),
:mod:`.load` (from weights, from a config-only folder, tiny; saving), :mod:`.tiny`.
"""

from .adapter import SanaVideoI2V

__all__ = ["SanaVideoI2V"]
