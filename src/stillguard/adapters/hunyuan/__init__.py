"""The HunyuanVideo family: the ``hunyuan-i2v`` adapter around diffusers'
``HunyuanVideoImageToVideoPipeline``.

Targets: hunyuanvideo-community/HunyuanVideo-I2V (16 channels, ``token_replace``, guidance-distilled)
and hunyuanvideo-community/HunyuanVideo-I2V-33ch (``latent_concat``), both 13B: 20 dual-stream +
40 single-stream MM-DiT blocks (HunyuanVideo, arXiv 2412.03603). The photo enters the model twice
(``pipeline_hunyuan_video_image2video.py``):

1. **VAE latent** (posterior mode, ``× scaling_factor``). ``latent_concat``: channels
   ``[noisy video | image latent on frame 0, zeros after | mask 1 on frame 0]`` (16+16+1), all
   frames stepped, and the pipeline drops the first 4 decoded frames. ``token_replace``: latent frame
   0 *is* the image latent, its tokens get a t=0 modulation inside the transformer, frames 1+ are
   stepped. The attack differentiates through this path (VAE encoder + every block).
2. **LLaVA-Llama-3-8B text-image encoder**: the photo's 576 CLIP-ViT tokens (every 2nd kept for
   33ch, every 4th for 16ch) are spliced into the prompt embedding. **This adapter does not
   differentiate that path.** Prompt embeddings are precomputed (from the clean photo, or zeros),
   so the attack does not see how its perturbation changes the text embedding, and
   :meth:`generate` also conditions on the precomputed embedding, not on one recomputed from the
   protected photo. A protection tuned here may therefore be weaker (or stronger) against the real
   pipeline, which re-embeds the protected photo. Option ``text_image_path``: ``"frozen"``
   (default; a warning is logged for real models) or ``"refuse"`` (raise instead of running an
   attack that ignores that path). Recomputing LLaVA differentiably is not implemented.

Other choices: ``t = 1000·σ``, ``x_σ = (1−σ)·z0 + σ·ε``, ``pred`` = velocity ``ε − z0``;
:meth:`sample_timesteps` shifts a uniform σ with the scheduler's static ``shift``; ``num_frames`` is
the number of frames :meth:`generate` returns (the pipeline is called with 4 more for
``latent_concat``), while ``stillguard.json``'s ``num_frames`` is the pipeline's argument;
:meth:`rollout` is the pipeline's Euler loop (its 0.001 image blend of the initial noise included),
with embedded guidance and true CFG as configured.

Vid-Freeze: the motion attention is the **joint** text+video attention of every block
(``transformer_blocks.*.attn`` then ``single_transformer_blocks.*.attn``): capability
``attention-joint``, maps reordered text first (layout ``text=T``). At 720×1280×129 there are
33·45·80 = 118,800 video tokens: use ``sampled`` rows or ``pooled`` per-frame maps. Anti-I2V: IRC
pulls the last three single-stream blocks onto dual-stream block 2 ("layer 3"); IRA uses all 60
blocks and ``vae.encoder.down_blocks.*``. Not covered: HunyuanVideo 1.5 (SigLIP + Qwen2.5-VL,
another pipeline), FramePack, SkyReels-V1-I2V (same class; not shipped or tested).

Files: :mod:`.adapter` (the differentiable pieces the loss sees: VAE-latent conditioning, the two
image-condition types, denoise, rollout), :mod:`.load` (from weights, from a config-only folder,
tiny; saving), :mod:`.capture` (layer names, the recording processor of the joint attention),
:mod:`.generate` (the pipeline's own sampling), :mod:`.tiny` (the tiny random models). The
flow-matching helpers it shares with LTX-Video are in :mod:`stillguard.adapters._shared.flow`.
"""

from .adapter import PATHS, HunyuanI2V

__all__ = ["PATHS", "HunyuanI2V"]
