"""The LTX-Video family: the ``ltx-i2v`` adapter around diffusers' ``LTXImageToVideoPipeline``.

Target: Lightricks/LTX-Video 0.9.x (2B, 28 blocks; shipped config: 0.9.0) and the 13B 0.9.7
dev/distilled checkpoints (48 blocks, the 0.9.5-style VAE; shipped config, generation defaults
unverified); 0.9.8 uses the same classes. How the photo conditions the model
(``pipeline_ltx_image2video.py``): the photo's VAE latent (posterior **sampled** with the run's
generator, then normalised by the VAE's ``latents_mean/std``) replaces latent frame 0, and the
per-token timestep is ``t·(1 − mask)``, i.e. 0 on the frame-0 tokens; the sampler steps only frames
1+. The gradient reaches the image through the VAE encoder and, via frame 0, through every attention
layer.

Options (``from_pretrained``/``from_config`` keywords or ``stillguard.json``):
    * ``condition_sample``: ``"sample"`` (default, what the pipeline does) draws the posterior
      ``mean + std·ε``; ``"mode"`` uses the mean. The adapter contract passes no generator to
      :meth:`encode`, so ``ε`` comes from a generator keyed by the image (and, inside
      :meth:`denoise`/:meth:`rollout`, by the noise video drawn from the run's generator): every
      PGD step gets a fresh draw and the loss is averaged over the posterior across steps (EOT),
      while a run stays reproducible. Each image of a batch is keyed by its own image and noise
      only, so a batch draws what its images draw alone. ``encode(x, generator=g)`` draws from
      ``g`` instead (one draw for the whole batch).
    * ``condition_noise`` (default 0, as ``LTXImageToVideoPipeline``): ``LTXConditionPipeline``'s
      ``image_cond_noise_scale`` (its default 0.15): frame 0 becomes ``c + s·σ²·ε`` at noise level σ;
      ``ε`` is keyed by the noise video and σ, so it is averaged over the same way.
    * ``opt_num_frames``: frames used while optimising (default ``num_frames``); ``generate`` uses
      ``num_frames``.

Other choices: ``t = 1000·σ`` (the scheduler's unit); :meth:`sample_timesteps` draws σ by pushing a
uniform through the sampler's resolution-dependent shift; ``pred`` is the velocity ``ε − z0``; frame 0
is excluded from the training loss (``target[:,0] = pred[:,0]``, detached), as it is never stepped;
:meth:`denoise` is conditional only, :meth:`rollout` runs the pipeline's Euler steps with CFG.

Vid-Freeze: the motion attention is ``attn1`` (video self-attention with 3D RoPE over ``F_lat·h·w``
tokens; ``attn2`` is T5 cross-attention, not temporal): capability ``attention-joint`` with layout
``text=0``. At 512×704×161 there are 21·16·22 = 7,392 tokens: an ``exact`` map is 7,392² per head
(≈3.5 GB per layer in bf16 for 32 heads, computed at once, not chunked), so it suits a few layers on
a large GPU; ``sampled`` rows are exact rows and fit all 28 (48) layers. Anti-I2V: IRC pulls
``transformer_blocks[-3:]`` onto ``transformer_blocks[2]`` ("layer 3", 0-based 2); IRA uses every
block plus ``vae.encoder.down_blocks.*``.

Not covered: LTX-2/2.3 (``LTX2ImageToVideoPipeline``: audio stream, Gemma-3 text encoder, and the
input photo re-encoded with H.264 at CRF 33 before conditioning - a protection would need EOT over
that codec); ``LTXConditionPipeline``'s multi-frame conditions and latent upsampler; the T5 text
path (prompt embeddings are computed once, without gradient).

Files: :mod:`.adapter` (the differentiable pieces the loss sees: the keyed posterior draw, frame-0
replacement, denoise, rollout), :mod:`.load` (from weights, from a config-only folder, tiny;
saving), :mod:`.capture` (layer names, the recording processor of ``attn1``), :mod:`.generate`
(the pipeline's own sampling), :mod:`.tiny` (the tiny random model). The flow-matching helpers it
shares with HunyuanVideo are in :mod:`stillguard.adapters._shared.flow`, the latent bookkeeping it
shares with LTX-2 in :mod:`stillguard.adapters._shared.latents`.
"""

from .adapter import LTXI2V, SAMPLE_MODES

__all__ = ["LTXI2V", "SAMPLE_MODES"]
