"""The conditioning Wan-derived image-to-video models share (Wan 2.1/2.2, SkyReels-V2): the Wan
VAE's latent of the photo, normalised, with the pipeline's frame mask, and the CLIP image tokens.

:class:`WanConditioning` is a mixin of the adapters built on ``AutoencoderKLWan`` that read the
settings and hold the pieces below. It needs ``self.pipe`` (``vae``, ``vae_scale_factor_temporal``
/ ``_spatial``, ``image_encoder`` and ``image_processor`` when CLIP is used), ``self.dtype``,
``self.device``, ``self.height``, ``self.width``, ``self.opt_num_frames`` and
``self.condition_grad``. Latents are ``(B, F_lat, C, h, w)`` in stillguard and ``(B, C, F_lat, h,
w)`` inside diffusers; :func:`swap_fc` swaps them.

What the pipelines do (``prepare_latents`` of ``WanImageToVideoPipeline`` and
``SkyReelsV2ImageToVideoPipeline`` are the same code): the video ``[photo, 0, 0, ...]`` of
``num_frames`` frames is VAE-encoded (posterior mode, ``sample_mode="argmax"``), normalised as
``(raw − latents_mean) / latents_std`` in float32, and a 4-channel mask (1 on the photo's frames)
is concatenated with it. The causal VAE makes latent frame 0 depend on the photo alone, so
``condition_grad="first"`` keeps the gradient on that frame only (the others are encoded without
grad; values exact). Wan2.2-TI2V and SkyReels-V2's diffusion forcing encode the photo alone (one
frame) and put it in place of latent frame 0 instead (:meth:`~WanConditioning._photo_raw` with
``concat=False``).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ..base import Conditioning
from .clip_image import clip_pixels
from .generate import check_image, video_pixels
from .settings import check_video_size, refuse_unknown

CONDITION_GRAD = ("all", "first")


def swap_fc(z: Tensor) -> Tensor:
    """``(B, F, C, h, w)`` <-> ``(B, C, F, h, w)``: stillguard's latent layout and diffusers'."""
    return z.permute(0, 2, 1, 3, 4)


def check_condition_grad(value: str) -> str:
    """``value`` if it is one of ``"all"``, ``"first"``.

    Raises:
        InputError: anything else.
    """
    if value not in CONDITION_GRAD:
        raise InputError(f"condition_grad must be 'all' or 'first', got {value!r}")
    return value


def check_options(target: str, options: dict[str, Any], allowed: Sequence[str]) -> None:
    """Raise :class:`InputError` for option names of ``target`` that are not in ``allowed``, and
    for ``vae_tiling`` with its reason (the Wan VAE).

    Raises:
        InputError: ``vae_tiling`` asked for, or an unknown option (with close matches).
    """
    refuse_tiling(target, options.get("vae_tiling"))
    refuse_unknown(target, options, allowed)


def refuse_tiling(target: str, vae_tiling: Any) -> None:
    """Raise :class:`InputError` when ``vae_tiling`` is asked for on a Wan-VAE target
    (``wan-i2v``, ``skyreels-v2-i2v``, ``cosmos2-i2v``, ``sana-video-i2v``), with the reason."""
    if vae_tiling:
        raise InputError(
            f"{target} has no VAE tiling: diffusers' Wan VAE tiling blends overlapping tiles "
            "(the latent changes) and under autograd keeps every tile's activations; use "
            "vae_slicing, gradient_checkpointing, fewer frames or a lower resolution instead"
        )


class WanConditioning:
    """The Wan VAE and CLIP side of the conditioning (a mixin; see the module docstring)."""

    pipe: Any
    dtype: torch.dtype
    device: torch.device
    height: int
    width: int
    num_frames: int
    opt_num_frames: int
    condition_grad: str
    prepare: Any

    def _check_sizes(self, patch: int) -> None:
        """Refuse frame counts the causal VAE cannot take and sizes the patches do not tile.

        Raises:
            InputError: ``num_frames − 1`` not a multiple of the temporal factor, or height/width
                not multiples of the VAE factor × the spatial ``patch``.
        """
        tf, sf = self.pipe.vae_scale_factor_temporal, self.pipe.vae_scale_factor_spatial
        frames = (self.num_frames, self.opt_num_frames)
        check_video_size(frames, tf, self.height, self.width, sf * patch)

    def _latent_frames(self, num_frames: int) -> int:
        return (num_frames - 1) // self.pipe.vae_scale_factor_temporal + 1

    def _norm(self, raw: Tensor) -> Tensor:
        """Raw VAE latent ``(B,C,F,h,w)`` -> the pipeline's ``(raw − mean) / std`` (in float32,
        as the pipeline computes it)."""
        cfg = self.pipe.vae.config
        mean = torch.tensor(cfg.latents_mean, device=raw.device).view(1, -1, 1, 1, 1)
        inv_std = 1.0 / torch.tensor(cfg.latents_std, device=raw.device).view(1, -1, 1, 1, 1)
        return ((raw.float() - mean) * inv_std).to(self.dtype)

    def _vae_mode(self, video: Tensor) -> Tensor:
        return self.pipe.vae.encode(video.to(self.pipe.vae.dtype)).latent_dist.mode().to(self.dtype)

    def _mask(self, frames: int, batch: int, like: Tensor) -> Tensor:
        """The pipeline's 4-channel frame mask ``(B, F_lat, 4, h, w)``: 1 on the photo's frames."""
        tf = self.pipe.vae_scale_factor_temporal
        n = (frames - 1) * tf + 1
        m = like.new_zeros(batch, 1, n, *like.shape[-2:])
        m[:, :, 0] = 1
        m = torch.cat([m[:, :, :1].repeat_interleave(tf, 2), m[:, :, 1:]], 2)
        return m.view(batch, -1, tf, *like.shape[-2:])

    def _photo_raw(self, pix: Tensor, concat: bool) -> Tensor:
        """The raw VAE latent ``(B,C,F,h,w)`` of the photo ``pix`` ``(B,3,1,H,W)`` in [-1, 1]:
        of the video ``[photo, 0, ...]`` (``concat``; ``opt_num_frames`` frames, honouring
        ``condition_grad``) or of the photo alone (one latent frame)."""
        if not concat:
            return self._vae_mode(pix)
        video = torch.cat(
            [pix, pix.new_zeros(*pix.shape[:2], self.opt_num_frames - 1, *pix.shape[3:])], 2
        )
        if self.condition_grad == "first":
            with torch.no_grad():
                rest = self._vae_mode(video)[:, :, 1:]
            return torch.cat([self._vae_mode(pix), rest], 2)  # causal: frame 0 = 1-frame encode
        return self._vae_mode(video)

    def clip_embeds(self, img: Tensor) -> Tensor:
        """CLIP ``hidden_states[-2]`` of a working-size image ``(B,3,H,W)`` -> ``(B, N_img, D)``."""
        enc = self.pipe.image_encoder
        pix = clip_pixels(img, self.pipe.image_processor).to(enc.dtype)
        return enc(pixel_values=pix, output_hidden_states=True).hidden_states[-2].to(self.dtype)

    def _condition(self, x: Tensor, *, concat: bool, clip: bool) -> Conditioning:
        """Image -> the pipeline's conditioning, differentiably: the 36-channel designs
        (``concat``: the latent of ``[photo, 0, ...]`` and the 4-channel mask) or the first-frame
        designs (the photo's latent on frame 0, zeros after); CLIP tokens if ``clip``.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)`` (normalised),
            ``first_latent (B,C,h,w)`` (raw latent of the photo), ``image_embeds
            (B,N_img,D_clip)`` (``clip``), ``extra["mask"] (B,F_lat,4,h,w)`` (``concat``).
        """
        check_image(x)
        img = self.prepare(x.to(self.device, self.dtype))
        pix = (img * 2 - 1).unsqueeze(2)  # (B, 3, 1, H, W)
        frames = self._latent_frames(self.opt_num_frames)
        raw = self._photo_raw(pix, concat=concat)
        lat = swap_fc(self._norm(raw))
        if not concat:
            lat = torch.cat([lat, lat.new_zeros(lat.shape[0], frames - 1, *lat.shape[2:])], 1)
        extra = {"mask": self._mask(frames, x.shape[0], lat).to(self.dtype)} if concat else {}
        emb = self.clip_embeds(img) if clip else None
        return Conditioning(
            image_latents=lat, first_latent=raw[:, :, 0], image_embeds=emb, extra=extra
        )

    def encode_video(self, video: Tensor) -> Tensor:
        """Video -> normalised posterior-mode latent. ``(B,F,3,H,W)`` -> ``(B,F_lat,C,h,w)``."""
        pixels = video_pixels(self, video, self.pipe.vae_scale_factor_temporal)
        return swap_fc(self._norm(self._vae_mode(pixels)))

    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        sf = self.pipe.vae_scale_factor_spatial
        ch = self.pipe.vae.config.z_dim
        return (
            batch,
            self._latent_frames(self.opt_num_frames),
            ch,
            self.height // sf,
            self.width // sf,
        )
