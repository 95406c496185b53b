"""The Kandinsky 5 family: the ``kandinsky5-i2v`` adapter around diffusers' ``Kandinsky5I2VPipeline``.

Target: ``kandinskylab/Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers`` (Kandinsky 5.0 Video Pro, 19.3 B:
60 visual + 4 text blocks of width 4096; shipped config from the official
``k5_pro_i2v_5s_sft_sd.yaml``), with the HunyuanVideo VAE (8× spatial, 4× temporal, 16 channels,
``scaling_factor`` 0.476986), Qwen2.5-VL-7B for the prompt and a pooled CLIP-L text vector. How the
photo conditions the model (``pipeline_kandinsky_i2v.py``, diffusers 0.42.1):

* ``prepare_latents`` encodes the photo alone (one frame) with the VAE **under torch.no_grad**,
  draws a **posterior sample** (``latent_dist.sample(generator)``, after the noise video from the
  same generator), multiplies by ``scaling_factor`` and writes it over latent frame 0
  (channels-last ``(B, F, h, w, C)``). :meth:`~.adapter.Kandinsky5I2V.encode` redoes this
  differentiably (checked equal to ``prepare_latents`` in the tests);
* the transformer's extra input channels (``visual_cond``) are ``zeros_like(latents)`` plus a mask
  that is 1 on frame 0: **the photo does not appear there** (read in the pipeline source: it builds
  ``visual_cond = torch.zeros_like(latents)`` and concatenates it unchanged), so frame 0's latent
  is the only road from the photo into the model; 16 + 16 + 1 = 33 channels;
* the timestep is **global**: every token, frame 0's included, gets the step's ``t`` (no
  per-token 0 as in LTX-Video); the scheduler steps frames 1+ only, so frame 0 stays the photo;
* after sampling, ``normalize_first_frame`` rescales the first 4 latent frames to the mean/std of
  the next (up to 5), within clamps, before decoding.

What the attack reaches: the frame-0 latent (VAE encoder, then every visual block's self-attention
and the frames that attend to it). What it does not: the Qwen2.5-VL and CLIP-L prompt (text only;
the pipeline never shows them the photo), ``visual_cond`` (zeros), the text blocks (prompt only).

Options (``from_pretrained``/``from_config`` keywords or ``stillguard.json``):
    * ``condition_sample``: ``"sample"`` (default, what the pipeline does) or ``"mode"``. The
      adapter contract passes no generator to :meth:`encode`, so ``ε`` comes from a generator keyed
      by the image (inside :meth:`denoise`/:meth:`rollout`, by the image and the noise video drawn
      from the run's generator): each PGD step gets a fresh draw and the loss averages over the
      posterior across steps (EOT), reproducibly; each image of a batch is keyed by its own inputs.
      ``encode(x, generator=g)`` draws from ``g`` instead (as ``ltx-i2v`` does);
    * ``flow_shift``: the scheduler's static shift (10, derived from the official config's
      ``scheduler_scale``; unverified against the hub folder) replaced when given;
    * ``opt_num_frames``: frames while optimising (default ``num_frames``).

Other choices: ``t = 1000·σ`` (the scheduler's unit); :meth:`sample_timesteps` pushes a uniform
through the static shift; flow matching ``noisy = (1−σ)·z0 + σ·noise``, ``pred`` = velocity
``noise − z0``; frame 0 is excluded from the loss (``target = pred`` there, detached), as it is
never stepped; :meth:`denoise` is conditional only; :meth:`rollout` runs the pipeline's Euler steps
with CFG as two passes (the positive and negative Qwen embeddings may differ in length, and the
transformer takes no text mask) and ends with ``normalize_first_frame``, so it returns what the
pipeline decodes (checked equal to the pipeline's latent output in the tests). Checkpoints with
sparse NABLA attention and runs of fewer than 17 frames (the pipeline's ``normalize_first_frame``
then gives NaN) are refused. Prompt embeddings: see :mod:`.load`.

Vid-Freeze: the motion attention is ``visual_transformer_blocks.*.self_attention`` (full 3D
self-attention over the ``F_lat·h/2·w/2`` video tokens; the prompt enters through
``cross_attention``): capability ``attention-joint`` with layout ``text=0``, 60 layers. At
512×768×121 there are 31·32·48 = 47,616 tokens: use ``sampled`` rows or ``pooled`` maps. The
recorded maps reproduce diffusers' rounding of q and k to bfloat16 after RoPE (see
:mod:`.capture`). Anti-I2V: IRC pulls the last three visual blocks onto block 2; IRA adds
``vae.encoder.down_blocks.*``. Memory switches: ``gradient_checkpointing`` (visual and text
blocks), ``vae_slicing``, ``vae_tiling`` (the HunyuanVideo VAE encodes overlapping spatial tiles
above 256 px and blends them: less memory, a slightly different latent; as in ``hunyuan-i2v``).

Files: :mod:`.adapter` (the differentiable pieces: the keyed posterior draw, the transformer call,
denoise through the shared :func:`~.._shared.frame0.frame0_denoise`), :mod:`.load` (from weights,
from a config-only folder, tiny; saving; prompt embedding), :mod:`.capture` (layer names, the
recording processor), :mod:`.generate` (rollout, ``normalize_first_frame``, the pipeline's own
sampling), :mod:`.tiny` (the tiny random model).
"""

from .adapter import SAMPLE_MODES, Kandinsky5I2V

__all__ = ["SAMPLE_MODES", "Kandinsky5I2V"]
