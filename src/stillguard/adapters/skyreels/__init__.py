"""The SkyReels-V2 family: the ``skyreels-v2-i2v`` adapter around diffusers'
``SkyReelsV2ImageToVideoPipeline`` and ``SkyReelsV2DiffusionForcingImageToVideoPipeline``.

SkyReels-V2 (Skywork, arXiv 2504.13074) is Wan 2.1's architecture retrained, in its own diffusers
classes (``SkyReelsV2Transformer3DModel`` with ``SkyReelsV2AttnProcessor``: Wan's blocks plus an
optional fps embedding and a block-causal mask for asynchronous diffusion forcing). Targets (config
folders shipped under ``adapters/configs/``; weights are never downloaded):

* **I2V** (``Skywork/SkyReels-V2-I2V-{14B,1.3B}-540P-Diffusers``; the default is 14B, 16.4 B
  parameters like Wan2.1-I2V-14B): the photo enters twice, exactly as in Wan2.1. (1) The VAE latent
  of the video ``[photo, 0, 0, ...]`` (causal Wan VAE, posterior mode), normalised, concatenated as
  ``noise(16) | mask(4) | latent(16)`` = 36 input channels. (2) CLIP ViT-H/14 ``hidden_states[-2]``
  (257 tokens × 1280) through each block's image cross-attention (``add_k_proj``/``add_v_proj``).
  :meth:`encode` redoes the CLIP resize/crop/normalise in torch, so the gradient reaches the photo
  by both roads.
* **Diffusion forcing** (``Skywork/SkyReels-V2-DF-{14B,1.3B}-540P-Diffusers``), a *flavour* read
  from the folder (its ``model_index.json`` names a diffusion-forcing pipeline), never a second
  name: the photo's 1-frame VAE latent (posterior mode, normalised) is the **prefix latent frame**
  with per-frame timestep 0; 16 input channels, no image encoder; the 1.3B DF adds an fps
  embedding (``inject_sample_info``: fps 16 → 0, anything else → 1). :attr:`SkyReelsV2I2V.flavour`
  says which design was found (``"i2v"`` or ``"diffusion-forcing"``).

What the attack reaches: the VAE latent (both flavours) and the 257 CLIP tokens (I2V), through
every block. What it does not: the UMT5 prompt (text, embedded once without gradient); in the DF
flavour, videos longer than one window (``num_frames > base_num_frames`` with ``overlap_history``)
are generated autoregressively and only the first window sees the photo's latent directly, later
windows see generated frames: the adapter models one window (its ``generate`` calls the pipeline
with ``base_num_frames = num_frames``).

Choices where the pipelines leave room:
    * latents use the VAE posterior mode (the pipelines do too: ``sample_mode="argmax"``);
    * ``flow_shift``: the published folders store the converter's UniPC ``flow_shift`` 1.0, while
      the pipelines' docstrings set 5.0 for I2V before sampling; the shipped ``stillguard.json``
      says 5.0 (unverified against the hub's stored value) and an option overrides it;
    * timesteps ``t = 1000·σ'``, ``σ ~ U(0,1)`` shifted by ``flow_shift`` (the sampler's spacing
      made continuous); flow matching ``noisy = (1−σ)z0 + σ·noise``, ``pred`` = velocity, ``target
      = noise − z0``; in DF the prefix frame (timestep 0, never stepped) is left out of the loss
      (``target = pred`` there, detached); :meth:`denoise` is conditional only;
    * :meth:`rollout` steps a private copy of the pipeline's UniPC scheduler differentiably, CFG
      batched as ``[negative, prompt]`` (the pipelines run two passes: the same sum). The DF
      pipeline steps every frame with its own scheduler copy on a view of its latents; in diffusers
      0.42.1 that leaves the corrector of the second step looking at the already stepped sample,
      and the rollout reproduces this so it lands where the pipeline does (checked in the tests);
    * DF options: ``addnoise_condition = a`` (default 0; the pipeline's example uses 20 for long
      videos) re-noises the prefix as ``c·(1−a/1000) + ε·a/1000`` at timestep ``a``, ``ε`` keyed by
      the noise video and the timestep (the pipeline draws it from the global RNG); ``fps``;
      asynchronous diffusion forcing (``ar_step > 0``, ``num_frame_per_block > 1`` with its
      block-causal attention) is refused, not modelled;
    * the diffusers DF transformer adds its fps projection tiled per frame, which broadcasts only
      from a batch of one: the adapter passes one fps flag for the whole batch (every item has the
      same), so batches and CFG batching work;
    * prompts are embedded once with UMT5 when the adapter is built, padded to 512 tokens (the
      I2V attention splits CLIP from text tokens at 512, hard-coded); ftfy optional.

Attacks (capabilities): as ``wan-i2v``. Vid-Freeze's motion attention is ``attn1`` (full 3D
self-attention over the video tokens; text and CLIP enter through ``attn2``): ``attention-joint``
with ``layout.text = 0``, all blocks (40 for 14B, 30 for 1.3B); at 544×960×97 there are
25·34·60 = 51,000 tokens: use ``sampled`` or ``pooled`` capture. Anti-I2V's IRC pulls the last
three blocks onto ``blocks.2``; IRA adds ``vae.encoder.down_blocks.*``. ``rollout`` serves
rollout-freeze. Memory switches: ``gradient_checkpointing``, ``vae_slicing``, ``condition_grad=
"first"`` (I2V: the gradient through latent frame 0 only; values exact); ``vae_tiling`` refused (the
Wan VAE's tiling changes the latent and keeps every tile's activations under autograd).

Files: :mod:`.adapter` (the differentiable pieces: conditioning through the shared
``WanConditioning``, the DF prefix, denoise), :mod:`.load` (flavour from the folder, from weights,
from a config-only folder, tiny; saving), :mod:`.generate` (rollout, the pipelines' own sampling),
:mod:`.capture` (layer names, capture through the shared Wan-style recording processor),
:mod:`.tiny` (the tiny random models, one per flavour). Shared with Wan in ``adapters/_shared``:
``wan_conditioning``, ``self_attention``, ``umt5``, ``clip_image``, ``unipc``.
"""

from .adapter import SkyReelsV2I2V
from .load import FLAVOURS

__all__ = ["FLAVOURS", "SkyReelsV2I2V"]
