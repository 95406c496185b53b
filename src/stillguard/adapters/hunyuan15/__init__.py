"""The HunyuanVideo 1.5 family: the ``hunyuan15-i2v`` adapter around diffusers'
``HunyuanVideo15ImageToVideoPipeline``.

Target: hunyuanvideo-community/HunyuanVideo-1.5-480p_i2v (8.3B: 54 dual-stream MM-DiT blocks of
16×128, a 32-channel VAE with 16× spatial and 4× temporal compression; shipped config
``hunyuan-video-1.5-480p-i2v``). The 720p and step-distilled checkpoints are config variants (not
shipped). How the photo conditions the model (``pipeline_hunyuan_video1_5_image2video.py``), by
**two roads, both differentiated here**:

1. **VAE latent**: the 1-frame encode of the photo (posterior mode, ``× scaling_factor`` 1.03682)
   is latent frame 0 of a condition video (zeros after), concatenated on channels with the noisy
   latent and a mask (1 on frame 0): 32 + 32 + 1 = 65 input channels; every frame is stepped;
2. **SigLIP so400m** at 384 px: 729 image tokens × 1152 through ``image_embedder`` into the joint
   attention's context, beside the text tokens.

Both preprocessing paths are PIL in the pipeline; :mod:`.conditioning` redoes them in torch (the
tests compare with the pipeline's own numbers). **What the attack does not reach**: the prompt.
Qwen2.5-VL-7B embeds the prompt alone (its vision tower is never shown the photo) and ByT5 embeds
the prompt's quoted text; both are precomputed (from the caller or ``prompt_embeds.safetensors``),
which loses nothing the photo could change. A protection cannot stop a user's prompt from asking
for motion; it acts through the photo's two roads only.

Choices where the pipeline leaves room:
    * the working size must be one of the pipeline's aspect-ratio buckets of ``target_size`` (640:
      480×848 for 16:9): the pipeline picks the bucket nearest the photo's aspect ratio and
      resizes the photo to it, so at a bucket size it generates what was attacked; other sizes
      are refused with the nearest bucket named (so the memory ladder's ``resolution`` rung is
      left out for this target);
    * ``t = 1000·σ``, ``x_σ = (1−σ)·z0 + σ·ε``, ``pred`` = velocity ``ε − z0``;
      :meth:`sample_timesteps` shifts a uniform σ with the scheduler's static ``shift`` (5);
    * :meth:`denoise` is conditional only; :meth:`rollout` runs the pipeline's Euler grid with its
      own guider (CFG 6 as two forwards, its start/stop/rescale settings included);
    * ``generate`` passes the 8-bit working-size photo (PIL, as a user would), one call per photo,
      all with the run's seed;
    * memory switches: ``gradient_checkpointing`` (transformer blocks; exact), ``vae_slicing``
      (exact), ``vae_tiling``: above 256 px the VAE encodes overlapping tiles and blends them, which
      **changes the photo's latent**; the model card's example enables it, so a user who follows it
      conditions on the tiled latent; with the switch on, the attack and ``generate`` both tile.

Vid-Freeze: the motion attention is the joint ``[context, video]`` attention of every block
(``transformer_blocks.*.attn``), capability ``attention-joint``, maps context first (padded text
tokens dropped, see :mod:`.capture`). At 480×848×121 there are 31·30·53 = 49,290 video tokens: use
``sampled`` rows or ``pooled`` maps. Anti-I2V's IRC pulls the last three blocks onto
``transformer_blocks.2``; IRA uses every block and ``vae.encoder.down_blocks.*``.

Sizing (``stillguard plan``): the transformer's forward reads tensor values (it reorders its
context with boolean masks), which fake tensors do not have; :mod:`.planning` runs an equivalent
forward there.

Files: :mod:`.adapter` (the differentiable pieces), :mod:`.conditioning` (the photo's two roads in
torch, the size buckets), :mod:`.planning` (the sizing forward), :mod:`.load` (from weights, from a
config-only folder, tiny; saving), :mod:`.capture` (layer names, the recording processor),
:mod:`.generate` (the pipeline's own sampling), :mod:`.tiny` (the tiny random model).
"""

from .adapter import HunyuanVideo15I2V

__all__ = ["HunyuanVideo15I2V"]
