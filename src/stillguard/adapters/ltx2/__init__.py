"""The LTX-2 family: the ``ltx2-i2v`` adapter around diffusers' ``LTX2ImageToVideoPipeline``.

Target: Lightricks/LTX-2 (19B; shipped config ``configs/ltx-2-19b``): a joint audio-video
transformer (48 blocks, video 32×128, audio 32×64), a causal video VAE (32× spatial, 8× temporal,
128 channels), an audio VAE and vocoder, Gemma-3 12B as text encoder and text connectors.

How the photo conditions the model (``pipeline_ltx2_image2video.py``): the photo is re-encoded as
one H.264 frame at ``image_crf`` 33 (PyAV) **before** the resize and the VAE; its VAE latent
(posterior **mode**), normalised by the VAE's ``latents_mean/std``, replaces latent frame 0, and
the per-token timestep is ``t·(1 − mask)``: 0 on the frame-0 tokens; the sampler steps frames 1+
only. 512×768×121 gives 16·16·24 = 6,144 video tokens.

What the attack reaches: the frame-0 latent, hence every video attention layer (and, through the
video→audio cross-attention, the audio stream's updates). What it does not reach: the H.264
re-encode itself (not differentiable: see :mod:`.codec` for the straight-through choice and its
measurement); the audio latent (drawn from noise; the photo only reaches it through attention);
the Gemma-3 prompt and the text connectors (text only, embedded once without gradient: the
adapter holds precomputed prompt tensors, see :mod:`.prompt`); the optional prompt enhancement
(``enable_prompt_enhancement``, off by default), which shows the photo to Gemma's vision tower and
returns *text* (a discrete step); LTX-2.5's duration head (text-driven).

Choices where the pipeline leaves room:
    * ``t = 1000·σ`` (the scheduler's unit); :meth:`sample_timesteps` pushes a uniform through the
      sampler's token-count shift; ``pred`` is the velocity ``ε − z0``; frame 0 is out of the
      training loss (``target[:, 0] = pred[:, 0]``, detached), as it is never stepped;
    * the audio stream in :meth:`denoise`: pure Gaussian noise (keyed per item by the video noise
      video, so a batch draws what its items draw alone) at audio timestep 1000 (σ = 1: exactly
      what that state is) — the photo's tokens see "audio not yet known"; :meth:`denoise` is
      conditional only (no guidance);
    * :meth:`rollout` runs the pipeline's Euler steps on both streams with its x0-space guidance
      (CFG 3 / audio 7, modality isolation 3, rescale 0.7); STG is left out where it has no effect
      (LTX-2.0 blocks, see :mod:`.generate`): up to three transformer passes a step;
    * ``use_cross_timestep`` follows the pipeline's default (True).

Vid-Freeze: the motion attention is ``attn1`` of each block (video self-attention; capability
``attention-joint``, layout ``text=0``); ``attn2`` is text cross-attention and the four audio
attentions are left alone. Anti-I2V: IRC pulls ``transformer_blocks[-3:]`` onto
``transformer_blocks[2]``; IRA uses every block plus ``vae.encoder.down_blocks.*``. The STG finding
of the probe (``docs/research/new-targets.md``): on LTX-2.0 the pipeline's default STG pass
(``stg_scale=1`` on block 28) returns the conditional prediction exactly, so it costs a forward a
step for nothing; stillguard leaves it out in both its rollout and ``generate``.

Not covered: ``LTX2ConditionPipeline`` (keyframes at other indices), LTX-2.3/2.5 configs
(``perturbed_attn`` blocks with per-head gates: capture refuses their processor), the latent
upsampler, audio-conditioned generation.

Files: :mod:`.adapter` (conditioning, denoise), :mod:`.codec` (the H.264 step), :mod:`.prompt`
(Gemma tensors and the connectors), :mod:`.settings`, :mod:`.load`, :mod:`.capture`,
:mod:`.generate` (rollout and the pipeline's own sampling), :mod:`.tiny`.
"""

from .adapter import LTX2I2V

__all__ = ["LTX2I2V"]
