"""The Cosmos-Predict2 family: the ``cosmos2-i2v`` adapter around diffusers'
``Cosmos2VideoToWorldPipeline``.

Target: nvidia/Cosmos-Predict2-2B-Video2World (shipped config
``configs/cosmos-predict2-2b-video2world``): ``CosmosTransformer3DModel`` (28 blocks of 16×128,
AdaLN-LoRA, patch ``(1, 2, 2)``), the Wan 2.1 VAE (8× spatial, 4× temporal, causal), T5-11B's
encoder for the prompt, and NVIDIA's guardrail (``cosmos_guardrail``, a separate package). The
14B model is the same design (36 blocks, 40 heads): a config folder away.

How the photo conditions the model (``pipeline_cosmos2_video2world.py``): the photo is repeated to
all 93 frames, the clip is VAE-encoded (posterior **sample** with the run's generator),
normalised by the VAE's ``latents_mean/std`` × ``sigma_data``, and only its first latent frame is
kept as the condition: it replaces latent frame 0 of every model input and of every x0
prediction, gets its own timestep ``t_c = σ_c/(σ_c+1)`` (σ_c = 1e-4) and a condition-mask input
channel of 1 (16 + 1 channels, + 1 padding-mask channel inside the patch embedding). The Wan VAE
is causal, so the first latent frame depends on pixel frame 0 only: :meth:`encode` encodes the
photo as a 1-frame video, the same condition at 1/93 of the cost (``tests/test_adapter_cosmos2.py``
checks it against the 9-frame repeated encode of the tiny model).

Sampler: EDM preconditioning on Karras sigmas σ ∈ [0.002, 80] (35 steps), ``c_in = c_skip = 1 −
t``, ``c_out = −t`` with ``t = σ/(σ+1)``: exactly flow matching in ``t``, the transformer's output
being the velocity ``ε − z0`` of ``x_t = (1−t)·z0 + t·ε``. Guidance ``x0 + 7·(x0 − x0_uncond)``.

What the attack reaches: the first latent frame (a posterior sample: EOT over the draws), hence
every attention layer. What it does not reach: the T5 prompt (text only, embedded once without
gradient; the adapter holds precomputed embeddings); the guardrail (it screens the prompt and the
*generated* frames, never the conditioning; see :mod:`.guardrail` for how ``generate`` runs it).

Choices where the pipeline leaves room:
    * timesteps are ``1000·t``; :meth:`sample_timesteps` draws σ uniformly on the sampler's Karras
      grid made continuous (ρ = 7), the rule ``wan-i2v`` follows for its own sampler; frame 0 is
      out of the training loss (``target[:, 0] = pred[:, 0]``, detached);
    * ``condition_sample="sample"`` (the pipeline's draw): the adapter contract passes no generator,
      so ε is keyed by the image (and in :meth:`denoise`/:meth:`rollout` by the noise video): a
      fresh draw each PGD step, reproducible runs, a batch drawing what its items draw alone;
      ``"mode"`` uses the posterior mean;
    * :meth:`denoise` is conditional only; :meth:`rollout` is the pipeline's loop (CFG as two
      separate passes, as the pipeline runs them);
    * ``concat_padding_mask`` resizes with torchvision, absent here: :mod:`.padding` puts an exact
      torch stand-in in its place.

Vid-Freeze: ``attn1`` of each block (video self-attention, capability ``attention-joint``, layout
``text=0``). Anti-I2V: IRC pulls ``transformer_blocks[-3:]`` onto ``transformer_blocks[2]``; IRA
uses every block plus ``vae.encoder.down_blocks.*``. Not covered: Video2World with several
conditioning frames (a video input), Cosmos-Predict2.5 (``Cosmos2_5_PredictBasePipeline``).

Files: :mod:`.adapter` (conditioning, denoise), :mod:`.settings`, :mod:`.load`, :mod:`.capture`,
:mod:`.generate` (rollout and the pipeline's own sampling), :mod:`.guardrail`, :mod:`.padding`,
:mod:`.tiny`.
"""

from .adapter import Cosmos2I2V

__all__ = ["Cosmos2I2V"]
