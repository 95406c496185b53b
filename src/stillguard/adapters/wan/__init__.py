"""The Wan family: the ``wan-i2v`` adapter around diffusers' ``WanImageToVideoPipeline``.

Targets (config folders shipped under ``adapters/configs/``; weights are never downloaded):
    * Wan2.1-I2V-14B-480P / -720P (``Wan-AI/Wan2.1-I2V-14B-{480P,720P}-Diffusers``): the photo
      enters twice. (1) Its VAE latent: the pipeline encodes the video ``[photo, 0, 0, ...]``
      (causal Wan VAE, so every latent frame depends on the photo) and concatenates
      ``noise(16) | mask(4) | latent(16)`` = 36 input channels. (2) CLIP ViT-H/14
      ``hidden_states[-2]`` (257 tokens × 1280) goes through each block's image cross-attention
      (``add_k_proj``/``add_v_proj``). :meth:`encode` redoes the CLIP resize/crop/normalise in
      torch, so the gradient reaches the photo through both paths.
    * Wan2.2-I2V-A14B (``Wan-AI/Wan2.2-I2V-A14B-Diffusers``): the same concat, no CLIP, and two
      14B experts: ``transformer`` for ``t >= boundary_ratio·1000`` (high noise), ``transformer_2``
      below. :meth:`denoise` and :meth:`rollout` route every timestep to its expert (CFG scale
      ``guidance_scale_2`` in the low-noise stage, as the pipeline) and :meth:`capture` hooks the
      same-named layers of both experts, so records follow the expert that ran.
    * Wan2.2-TI2V-5B (``Wan-AI/Wan2.2-TI2V-5B-Diffusers``, ``expand_timesteps``): latent frame 0
      is *replaced* by the photo's latent (a 1-frame encode) and its tokens get timestep 0.
    * SkyReels-V2 (Wan's architecture in its own diffusers classes) is the ``skyreels-v2-i2v``
      target (:mod:`stillguard.adapters.skyreels`); the pieces both families use are in
      ``adapters/_shared`` (``wan_conditioning``, ``self_attention``, ``umt5``, ``clip_image``,
      ``unipc``).

    TI2V is a *mode* of this adapter, not a second name: the pipeline class is the same and the
    mode is a property of the checkpoint (``expand_timesteps`` in its ``model_index.json``), so
    pointing ``wan-i2v`` at any Wan folder does the right thing and no name can be mismatched with
    a folder. :attr:`WanI2V.flavour` says which design was found.

Files: :mod:`.adapter` (the differentiable pieces the loss sees: conditioning, expert routing,
denoise; the VAE/CLIP conditioning itself is the shared ``WanConditioning``), :mod:`.load` (from
weights, from a config-only folder, tiny; saving), :mod:`.generate` (the differentiable rollout and
the pipeline's own sampling), :mod:`.capture` (layer names, the recording processor of ``attn1``,
both experts), :mod:`.tiny` (the tiny random models, one per flavour).

Attacks (capabilities). Vid-Freeze's "attention that synthesizes motion" is ``attn1``: full 3D
self-attention over the video tokens only (text and CLIP enter through ``attn2``), so it is
offered as ``attention-joint`` with ``layout.text = 0``; all blocks (40 / 40 per expert / 30).
Wan2.1 at 480p has 21·30·52 = 32,760 tokens: use ``sampled`` (exact rows) or ``pooled``
(frame-pooled) capture. Anti-I2V's IRC pulls the last three blocks (``blocks.37..39`` of the
40-block 14B models, ``blocks.27..29`` of TI2V-5B; on A14B those of the expert the timestep
selects) onto the shallow "layer 3": ``blocks.2`` with the method's default ``irc_ref=2`` (1-based
reading), ``irc_ref=3`` for the 0-based one; the paper does not say which. IRA uses all blocks
plus ``vae.encoder.down_blocks.*`` (the causal encoder runs chunk by chunk: 1 + (F−1)/4 records
per layer and encode). The Wan VAE has no gradient checkpointing (``_supports_gradient_checkpointing
= False``): encoding 81 frames with grad is what costs memory; ``condition_grad="first"`` keeps
the gradient on latent frame 0 only (the other frames are encoded without grad; values exact).

Memory switches (every constructor; not saved): ``gradient_checkpointing`` recomputes each
transformer block in backward (diffusers' ``enable_gradient_checkpointing``, every expert; values
exact); ``vae_slicing`` encodes batch items one by one (exact). ``vae_tiling`` is refused:
diffusers' ``AutoencoderKLWan`` tiling encodes 256-px tiles at a 192-px stride and blends the
overlaps, so the latent changes above 256 px, and under autograd every tile's activations are kept
for backward anyway (about (256/192)^2 = 1.8x the encoder's activations), so it is not expected to
lower a protection step's peak.

Choices where the pipeline leaves room:
    * latents use the VAE posterior mode (the pipeline does too: ``sample_mode="argmax"``);
    * timesteps are ``t = 1000·σ'`` with ``σ ~ U(0,1)`` shifted by the scheduler's ``flow_shift``
      ``s``: ``σ' = sσ/(1+(s−1)σ)`` (the sampler's own spacing, made continuous); on Wan2.2-A14B
      a draw reaches the high-noise expert when ``σ' >= 0.9``: 36% of draws at s = 5, 25% at 3;
    * flow matching: ``noisy = (1−σ)z0 + σ·noise``, ``pred`` = velocity, ``target = noise − z0``,
      ``x0 = noisy − σ·pred``; on TI2V's frame 0 (timestep 0, output discarded by the pipeline)
      ``target`` equals the detached prediction, so losses ignore it; :meth:`denoise` is
      conditional only (no CFG);
    * :meth:`rollout` steps a private copy of the pipeline's UniPC scheduler (order 2, flow
      sigmas), differentiably, with CFG batched as ``[negative, prompt]``;
    * prompts are embedded once with UMT5 when the adapter is built, padded to 512 tokens;
      ftfy is optional (used only if installed).
"""

from .adapter import WanI2V

__all__ = ["WanI2V"]
