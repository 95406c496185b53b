"""The CogVideoX family: the ``cogvideox-i2v`` adapter around diffusers'
``CogVideoXImageToVideoPipeline``.

Targets: THUDM/CogVideoX-5b-I2V (CogVideoX, arXiv 2408.06072), the model attacked by Vid-Freeze
(arXiv 2509.23279) and Anti-I2V (arXiv 2603.24570), and its successor THUDM/CogVideoX1.5-5B-I2V
(768x1360, 81 frames). Needs diffusers; weights load as safetensors only, from the local cache only,
never with remote code.

Files: :mod:`.adapter` (the differentiable pieces the loss sees: encode, condition, denoise,
rollout), :mod:`.load` (from weights, from a config-only folder, tiny; saving), :mod:`.capture`
(layer names, the recording joint-attention processor), :mod:`.generate` (decoding, the pipeline's
own sampling), :mod:`.tiny` (the tiny random models).

CogVideoX1.5 (``patch_size_t=2``), as the pipeline's ``__call__`` does it: the latent video gets
``(-F_lat) mod 2`` extra latent frames (81 frames: 21 latent frames -> 22), the image latent is
latent frame 0 followed by zeros, the transformer gets the ``ofs`` embedding (2.0), RoPE is built
over ``F_lat / 2`` token frames, and decoding drops the extra frames at the *front* (so the frame
that carried the image latent). Its VAE divides the image latent by the scaling factor
(``invert_scale_latents``) while decoding still divides the video latent by it: the video latent
is ``scaling_factor · vae_latent`` for both versions, the image latent differs.

Choices where the pipeline leaves room:
    * the image latent uses the VAE posterior **mode** (the pipeline samples it with the run's
      generator); :meth:`CogVideoXI2V.generate` still runs the pipeline as-is, sampling included;
    * the prompt is embedded once, without grad, when the adapter is built (T5 is then dropped);
      ``negative_prompt_embeds`` default to the embedding of ``""`` (zeros when no T5 exists);
    * :meth:`denoise` is conditional only (no CFG); :meth:`rollout` applies CFG as configured and
      always steps with DDIM (eta 0), so it is deterministic given ``noise``;
    * ``opt_num_frames`` (default ``num_frames``) sets the frame count used while optimising:
      :meth:`latent_shape`, :meth:`encode` (zero padding) and the default ``z0`` of :meth:`denoise`
      use its latent frames, and RoPE is built for whatever frame count reaches the transformer;
      :meth:`generate` uses ``num_frames``;
    * 1.5: :meth:`encode_video` fills the extra front latent frame with a copy of the first one
      (the pipeline discards that frame, so any content is consistent with it).
"""

from .adapter import CogVideoXI2V

__all__ = ["CogVideoXI2V"]
