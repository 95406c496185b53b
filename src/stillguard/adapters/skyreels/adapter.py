"""The ``skyreels-v2-i2v`` adapter: the differentiable pieces the loss sees (conditioning, the
prefix frame of diffusion forcing, denoise). The model, the two flavours and the choices made are
in the family's docstring (:mod:`stillguard.adapters.skyreels`). Latents are ``(B, F_lat, C, h,
w)`` here and ``(B, C, F_lat, h, w)`` inside diffusers (:func:`~.._shared.wan_conditioning.swap_fc`)."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import InputError, ModelError
from ...registry import ADAPTERS
from .._shared.flow import keyed_randn
from .._shared.load import adopt_pipeline
from .._shared.umt5 import pad_prompt
from .._shared.unipc import flow_shift_timesteps, shifted_scheduler
from .._shared.wan_conditioning import WanConditioning, check_condition_grad, swap_fc
from ..base import Adapter, Conditioning, Denoised
from .capture import SkyReelsCapture
from .generate import SkyReelsVideo
from .load import FLAVOURS, SkyReelsLoading

#: the pipelines' ``__call__`` defaults (544×960, 97 frames, 50 steps, CFG 5, fps 24)
_DEFAULTS = dict(
    height=544, width=960, num_frames=97, num_inference_steps=50, guidance_scale=5.0, fps=24,
    addnoise_condition=0.0, ar_step=0,
)  # fmt: skip


@ADAPTERS.register("skyreels-v2-i2v")
class SkyReelsV2I2V(SkyReelsLoading, SkyReelsCapture, SkyReelsVideo, WanConditioning, Adapter):
    """SkyReels-V2 image-to-video: I2V (CLIP + concat) or diffusion forcing (prefix frame)."""

    capabilities = frozenset(
        {"hidden-states", "attention-joint", "vae-features", "image-embeds", "rollout"}
    )
    default_model = "Skywork/SkyReels-V2-I2V-14B-540P-Diffusers"
    real_models = {
        "Skywork/SkyReels-V2-I2V-14B-540P-Diffusers": "skyreels-v2-i2v-14b-540p",
        "Skywork/SkyReels-V2-I2V-1.3B-540P-Diffusers": "skyreels-v2-i2v-1.3b-540p",
        "Skywork/SkyReels-V2-DF-14B-540P-Diffusers": "skyreels-v2-df-14b-540p",
        "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers": "skyreels-v2-df-1.3b-540p",
    }

    def __init__(
        self,
        pipe: Any,
        *,
        model_id: str,
        prompt_embeds: Tensor,
        negative_prompt_embeds: Tensor | None,
        settings: dict[str, Any],
        device: torch.device,
        dtype: torch.dtype,
    ) -> None:
        encoder = getattr(pipe, "image_encoder", None)
        adopt_pipeline(self, pipe, model_id, device, dtype, pipe.vae, encoder, pipe.transformer)
        self.flavour = next(f for f, cls in FLAVOURS.items() if type(pipe).__name__ == cls)
        s = {**_DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
        self.height, self.width = int(s["height"]), int(s["width"])
        self.num_frames = int(s["num_frames"])
        self.opt_num_frames = int(s.get("opt_num_frames") or self.num_frames)
        self.num_inference_steps = int(s["num_inference_steps"])
        self.guidance_scale = float(s["guidance_scale"])
        self.fps = int(s["fps"])
        self.addnoise_condition = float(s["addnoise_condition"])
        self.condition_grad = check_condition_grad(str(s.get("condition_grad", "all")))
        self.flow_shift = s.get("flow_shift")
        self._rollout_scheduler = shifted_scheduler(pipe, self.flow_shift)
        cfg = pipe.transformer.config
        self.has_clip = cfg.image_dim is not None
        self._refuse_unmodelled(cfg, int(s["ar_step"]))
        if not self.has_clip:
            self.capabilities = self.capabilities - {"image-embeds"}  # type: ignore[misc]
        self._check_sizes(cfg.patch_size[1])
        # both pipelines pad the UMT5 output to 512 tokens; the I2V attention relies on it
        self.prompt_embeds = pad_prompt(prompt_embeds, model="SkyReels-V2").to(device, dtype)
        ne = negative_prompt_embeds
        ne = torch.zeros_like(self.prompt_embeds) if ne is None else ne.to(device, dtype)
        self.negative_prompt_embeds = pad_prompt(ne, "negative_prompt_embeds", "SkyReels-V2")

    def _refuse_unmodelled(self, cfg: Any, ar_step: int) -> None:
        """Refuse designs whose sampling the adapter does not reproduce (see the family's story).

        Raises:
            ModelError: an I2V pipeline on a transformer without CLIP inputs, or the reverse.
            InputError: a block-causal transformer (``num_frame_per_block > 1``), ``ar_step > 0``,
                ``addnoise_condition < 0``.
        """
        if self.has_clip != (self.flavour == "i2v"):
            raise ModelError(
                f"{self.model_id}: the {FLAVOURS[self.flavour]} pipeline needs a transformer "
                f"{'with' if self.flavour == 'i2v' else 'without'} image inputs (image_dim)"
            )
        if cfg.num_frame_per_block != 1 or ar_step != 0:
            raise InputError(
                "skyreels-v2-i2v models synchronous diffusion forcing only (num_frame_per_block 1, "
                f"ar_step 0; got {cfg.num_frame_per_block} and {ar_step}): the asynchronous "
                "schedule and its block-causal attention are not reproduced"
            )
        if self.addnoise_condition < 0:
            raise InputError(f"addnoise_condition must be >= 0, got {self.addnoise_condition}")

    def describe(self) -> dict[str, Any]:
        """The base description plus the SkyReels design found in the folder (``flavour``)."""
        return {**super().describe(), "flavour": self.flavour}

    # ------------------------------------------------------------------ helpers
    @property
    def forcing(self) -> bool:
        """True for the diffusion-forcing flavour (the photo is the prefix latent frame)."""
        return self.flavour == "diffusion-forcing"

    def _embeds(self, batch: int, negative: bool = False) -> Tensor:
        e = self.negative_prompt_embeds if negative else self.prompt_embeds
        return e.expand(batch, -1, -1) if e.shape[0] == 1 else e

    def _prefix(self, cond: Conditioning, noise: Tensor, t: Tensor) -> tuple[Tensor, float]:
        """The prefix frame ``(B,1,C,h,w)`` and its timestep (diffusion forcing): the photo's
        latent, or with ``addnoise_condition = a`` the pipeline's ``c·(1 − a/1000) + ε·a/1000`` at
        timestep ``a``, ``ε`` keyed by the noise video and ``t`` (each image by its own)."""
        c0 = cond.image_latents[:, :1]
        a = self.addnoise_condition
        if not a:
            return c0, 0.0
        eps = keyed_randn(c0.shape, noise, t).to(c0)
        return c0 * (1 - a / 1000) + eps * (a / 1000), a

    # ------------------------------------------------------------------ conditioning
    def encode(self, x: Tensor) -> Conditioning:
        """Image -> the pipeline's conditioning, differentiably.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)`` (normalised; diffusion
            forcing: the photo's latent on frame 0, zeros after), ``first_latent (B,C,h,w)`` (raw
            latent of the photo), ``image_embeds (B,257,1280)`` at real size (I2V),
            ``extra["mask"] (B,F_lat,4,h,w)`` (I2V).
        """
        return self._condition(x, concat=not self.forcing, clip=self.has_clip)

    # ------------------------------------------------------------------ denoiser
    def _call(
        self, lat: Tensor, cond: Conditioning, t: Tensor, embeds: Tensor, t0: float
    ) -> Tensor:
        """One transformer call as the pipeline makes it. lat/result ``(B,F,C,h,w)``, t ``(B,)``;
        ``t0``: the prefix frame's timestep (diffusion forcing: ``lat`` holds the prefix)."""
        model = self.pipe.transformer
        extra: dict[str, Any] = {}
        if self.forcing:
            inp = lat
            timestep = t.to(torch.float32)[:, None].repeat(1, lat.shape[1])
            timestep[:, 0] = t0
            # one fps flag for the whole batch: diffusers adds the fps projection tiled per frame,
            # which broadcasts only from a batch of one (every item has the same fps anyway)
            extra = dict(enable_diffusion_forcing=True, fps=[0 if self.fps == 16 else 1])
        else:
            img = cond.image_latents
            if img.shape[1] != lat.shape[1]:
                raise InputError("z0/noise must have as many latent frames as the conditioning")
            inp = torch.cat([lat, cond.extra["mask"].to(lat), img.to(lat)], 2)
            timestep = t
            extra["encoder_hidden_states_image"] = cond.image_embeds.to(model.dtype)
        out = model(
            hidden_states=swap_fc(inp).to(model.dtype), timestep=timestep,
            encoder_hidden_states=embeds.to(model.dtype), return_dict=False, **extra,
        )[0]  # fmt: skip
        return swap_fc(out).to(self.dtype)

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 1000·σ'``, ``σ' = sσ/(1+(s−1)σ)``, ``σ ~ U(0,1)``, ``s`` = flow shift. Shape ``(batch,)``."""
        return flow_shift_timesteps(self.pipe.scheduler, batch, generator, self.device)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """Flow matching: ``noisy = (1−σ)z0 + σ·noise`` with ``σ = t/1000``; ``pred`` = velocity;
        ``target = noise − z0``; ``x0 = noisy − σ·pred``. Diffusion forcing: frame 0 is the prefix
        (the photo's latent at timestep 0), excluded from the loss (``target = pred`` there,
        detached). Conditional only (no CFG).

        ``z0`` defaults to the photo's normalised latent repeated over every latent frame (it keeps
        the gradient of ``x``). Shape: timestep ``(B,)`` or scalar; the rest ``(B,F_lat,C,h,w)``.
        """
        cond = x if isinstance(x, Conditioning) else self.encode(x)
        first = cond.image_latents[:, :1]
        if z0 is None:
            z0 = first.expand(-1, cond.image_latents.shape[1], -1, -1, -1)
        z0, noise = z0.to(self.device, self.dtype), noise.to(self.device, self.dtype)
        b = z0.shape[0]
        t = torch.as_tensor(timestep, device=self.device, dtype=torch.float32).reshape(-1).expand(b)
        sigma = (t / 1000).to(self.dtype).view(-1, 1, 1, 1, 1)
        noisy = (1 - sigma) * z0 + sigma * noise
        t0 = 0.0
        if self.forcing:
            prefix, t0 = self._prefix(cond, noise, t)
            noisy = torch.cat([prefix, noisy[:, 1:]], 1)
        pred = self._call(noisy, cond, t, self._embeds(b), t0)
        target = noise - z0
        x0 = noisy - sigma * pred
        if self.forcing:
            x0 = torch.cat([first.expand(b, -1, -1, -1, -1), x0[:, 1:]], 1)
            target = torch.cat([pred[:, :1].detach(), target[:, 1:]], 1)
        return Denoised(pred=pred, target=target, x0=x0, z0=z0, noisy=noisy)
