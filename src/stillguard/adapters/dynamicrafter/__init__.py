"""The DynamiCrafter family: the ``dynamicrafter`` adapter, stillguard's own implementation of the
model, official weights.

Target: DynamiCrafter (Xing et al., arXiv 2310.12190; Doubiiu/DynamiCrafter), the 1024×576, 512×320
and 256×256 checkpoints, one of the three models Anti-I2V (arXiv 2603.24570) evaluates. Not in
diffusers, so the architecture is written here (:mod:`.nets`, each file names its official source)
with the official parameter names: ``official_model(part)`` is the whole ``LatentVisualDiffusion``
of ``model.ckpt``. **Licence**: the code is Apache-2.0, but the authors allow the weights for
personal/research/non-commercial use only (model card and README).

Files: :mod:`.adapter` (the differentiable pieces the loss sees), :mod:`.load` (from converted
weights, from a config-only folder, official modules, tiny; saving), :mod:`.weights` (loading,
config guessing, prompt embeddings), :mod:`.config` (config folders), :mod:`.convert` (the official
pickle to safetensors, safely: ``stillguard convert``), :mod:`.ddim` (the official sampler),
:mod:`.generate` (sampling, decoding, generation), :mod:`.capture` (layer names and capture),
:mod:`.tiny` (the tiny random model), :mod:`.nets` (UNet, VAE, CLIP towers, Resampler).

How the model is conditioned (``lvdm/models/ddpm3d.py``, ``scripts/evaluation/inference.py``):
the image latent (SD VAE, ×0.18215) is concatenated on channels to every noisy frame; the image's
OpenCLIP ViT-H/14 tokens go through the query Resampler (16 tokens per frame) and are appended
to the 77 OpenCLIP text tokens for the dual cross-attention; ``fs`` (fps for 1024/512, frame
stride for 256) is embedded like a timestep. 1024/512: v-prediction, zero-terminal-SNR betas,
dynamic latent rescale, ``uniform_trailing`` DDIM with ``guidance_rescale=0.7``; 256:
eps-prediction, ``uniform`` DDIM, no rescale (``scripts/run.sh``, ``funcs.py``). Guidance: 7.5,
with the empty prompt and the image tokens of a gray (all-zero in ``[-1, 1]``) image as the
unconditional branch; the image latent is kept in both branches.

Choices where the sources leave room:
    * [ENG] the VAE posterior *mean* is used (the official code draws a sample), so encoding is
      deterministic; ``denoise`` draws nothing.
    * [ENG] ``denoise``: ``t`` is an integer DDPM step; ``x0``, ``z0`` are in unscaled-latent units
      (the 1024/512 models noise ``scale_arr[t]·z0``: ``target`` and ``x0`` account for it).
    * [ENG] ``rollout`` is the official DDIM with ``eta = 0`` (deterministic); ``generate`` uses
      the official ``eta = 1`` with noise from the seed.
    * [ENG] prompts: precomputed embeddings (``prompt_embeds.safetensors`` or ``prompt_embeds=``);
      without them a folder whose weights hold the text tower gets the exact embedding of the
      empty prompt (the official no-text mode); no tokenizer is shipped.
    * Vid-Freeze's decoupled form: ``attention-temporal`` = both self-attentions (``attn1``,
      ``attn2``; ``temporal_selfatt_only``) of every ``TemporalTransformer``, ``init_attn``
      included, maps ``(B·h·w, heads, F, F)``; ``attention-spatial`` = every spatial ``attn1``.
    * Anti-I2V: ``hidden`` = ``input_blocks.0..11``, ``middle_block``, ``output_blocks.0..11``
      (outputs ``(B·F, C, h, w)``); the method's ``irc_ref=2`` ("layer 3") is ``input_blocks.2``
      and its last three are ``output_blocks.9..11`` [INF: the paper names no DynamiCrafter
      layer]; ``vae`` = the encoder's resolution levels and mid block; ``image-embeds`` = the
      Resampler tokens the UNet sees.
"""

from .adapter import DynamiCrafter
from .convert import convert

__all__ = ["DynamiCrafter", "convert"]
