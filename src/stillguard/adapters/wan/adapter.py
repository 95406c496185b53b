"""The ``wan-i2v`` adapter: the differentiable pieces the loss sees (conditioning, the routing of
each timestep to its expert, denoise). The model facts, the three flavours and the choices made are
in the family's docstring (:mod:`stillguard.adapters.wan`). Latents are ``(B, F_lat, C, h, w)``
here and ``(B, C, F_lat, h, w)`` inside diffusers; :func:`~.._shared.wan_conditioning.swap_fc` swaps
them. The VAE/CLIP conditioning it shares with SkyReels-V2 is
:class:`~.._shared.wan_conditioning.WanConditioning`."""

from __future__ import annotations

from typing import Any

import torch
from torch import Tensor

from ...errors import InputError
from ...registry import ADAPTERS
from .._shared.load import adopt_pipeline
from .._shared.umt5 import pad_prompt
from .._shared.unipc import flow_shift_timesteps, shifted_scheduler
from .._shared.wan_conditioning import WanConditioning, check_condition_grad, swap_fc
from ..base import Adapter, Conditioning, Denoised
from .capture import WanCapture
from .generate import WanVideo
from .load import WanLoading

_DEFAULTS = dict(num_inference_steps=50, guidance_scale=5.0)  # the pipeline's __call__ defaults


@ADAPTERS.register("wan-i2v")
class WanI2V(WanLoading, WanCapture, WanVideo, WanConditioning, Adapter):
    """Wan 2.1 / 2.2 image-to-video (see the family's docstring for the three flavours)."""

    capabilities = frozenset(
        {"hidden-states", "attention-joint", "vae-features", "image-embeds", "rollout"}
    )
    default_model = "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers"
    real_models = {
        "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": "wan2.1-i2v-14b-480p",
        "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers": "wan2.1-i2v-14b-720p",
        "Wan-AI/Wan2.2-I2V-A14B-Diffusers": "wan2.2-i2v-a14b",
        "Wan-AI/Wan2.2-TI2V-5B-Diffusers": "wan2.2-ti2v-5b",
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
        self.experts = self._experts_of(pipe)
        adopt_pipeline(
            self, pipe, model_id, device, dtype, pipe.vae, pipe.image_encoder, *self.experts
        )
        s = {**_DEFAULTS, **{k: v for k, v in settings.items() if v is not None}}
        self.height, self.width = int(s.get("height", 480)), int(s.get("width", 832))
        self.num_frames = int(s.get("num_frames", 81))
        self.opt_num_frames = int(s.get("opt_num_frames") or self.num_frames)
        self.num_inference_steps = int(s["num_inference_steps"])
        self.guidance_scale = float(s["guidance_scale"])
        g2 = s.get("guidance_scale_2")
        self.guidance_scale_2 = float(g2) if g2 is not None else None
        self.condition_grad = check_condition_grad(str(s.get("condition_grad", "all")))
        self.flow_shift = s.get("flow_shift")
        self._rollout_scheduler = shifted_scheduler(pipe, self.flow_shift)
        self.expand = bool(pipe.config.expand_timesteps)
        self.boundary = pipe.config.boundary_ratio
        self.has_clip = self.experts[0].config.image_dim is not None
        self.flavour = "wan2.2-ti2v" if self.expand else (
            "wan2.2-a14b" if len(self.experts) > 1 else "wan2.1"
        )  # fmt: skip
        caps = set(type(self).capabilities)
        if not self.has_clip:
            caps.discard("image-embeds")
        self.capabilities = frozenset(caps)  # type: ignore[misc]
        self._check_sizes(self.experts[0].config.patch_size[1])
        if self.has_clip:  # Wan splits image from text tokens assuming exactly 512 text tokens
            prompt_embeds = pad_prompt(prompt_embeds)
        self.prompt_embeds = prompt_embeds.to(device, dtype)
        ne = negative_prompt_embeds
        ne = torch.zeros_like(self.prompt_embeds) if ne is None else ne.to(device, dtype)
        self.negative_prompt_embeds = (
            pad_prompt(ne, "negative_prompt_embeds") if self.has_clip else ne
        )

    def describe(self) -> dict[str, Any]:
        """The base description plus the Wan design found in the folder (``flavour``)."""
        return {**super().describe(), "flavour": self.flavour, "experts": len(self.experts)}

    # ------------------------------------------------------------------ helpers
    def _embeds(self, batch: int, negative: bool = False) -> Tensor:
        e = self.negative_prompt_embeds if negative else self.prompt_embeds
        return e.expand(batch, -1, -1) if e.shape[0] == 1 else e

    # ------------------------------------------------------------------ conditioning
    def encode(self, x: Tensor) -> Conditioning:
        """Image -> the pipeline's conditioning, differentiably.

        Shape:
            x ``(B,3,H,W)`` in [0,1] -> ``image_latents (B,F_lat,C,h,w)`` (normalised; TI2V: the
            photo's latent on frame 0, zeros after), ``first_latent (B,C,h,w)`` (raw latent of the
            photo), ``image_embeds (B,N_img,D_clip)`` (Wan2.1 only), ``extra["mask"]
            (B,F_lat,4,h,w)`` (concat flavours).
        """
        return self._condition(x, concat=not self.expand, clip=self.has_clip)

    # ------------------------------------------------------------------ denoiser
    def _expert(self, t: float) -> tuple[Any, float]:
        """The transformer and CFG scale the pipeline uses at timestep ``t`` (model units)."""
        if self.boundary is None or len(self.experts) == 1 or t >= self.boundary * 1000:
            return self.experts[0], self.guidance_scale
        g2 = self.guidance_scale_2
        return self.experts[1], self.guidance_scale if g2 is None else g2

    def _call(
        self, model: Any, lat: Tensor, cond: Conditioning, t: Tensor, embeds: Tensor
    ) -> Tensor:
        """One transformer call as the pipeline makes it. lat/result ``(B,F,C,h,w)``, t ``(B,)``."""
        if self.expand:
            keep = torch.ones_like(lat[:, :, :1])
            keep[:, 0] = 0
            inp = (1 - keep) * cond.image_latents[:, :1] + keep * lat
            p_h, p_w = model.config.patch_size[1:]
            per_tok = keep[0, :, 0, ::p_h, ::p_w].flatten()  # 0 on frame-0 tokens
            timestep = per_tok[None] * t.to(lat.dtype)[:, None]
        else:
            img = cond.image_latents
            if img.shape[1] != lat.shape[1]:
                raise InputError("z0/noise must have as many latent frames as the conditioning")
            inp = torch.cat([lat, cond.extra["mask"].to(lat), img.to(lat)], 2)
            timestep = t
        image = None if cond.image_embeds is None else cond.image_embeds.to(model.dtype)
        out = model(
            hidden_states=swap_fc(inp).to(model.dtype), timestep=timestep,
            encoder_hidden_states=embeds.to(model.dtype),
            encoder_hidden_states_image=image,
            return_dict=False,
        )[0]  # fmt: skip
        return swap_fc(out).to(self.dtype)

    def _routed(self, lat: Tensor, cond: Conditioning, t: Tensor, embeds: Tensor) -> Tensor:
        """Route each batch element to its expert by its timestep (Wan2.2-A14B)."""
        models = [self._expert(float(v))[0] for v in t]
        if all(m is models[0] for m in models):
            return self._call(models[0], lat, cond, t, embeds)
        out = torch.empty_like(lat)
        for m in {id(m): m for m in models}.values():
            idx = torch.tensor([i for i, mm in enumerate(models) if mm is m], device=lat.device)
            sub = Conditioning(
                cond.image_latents[idx], cond.first_latent[idx],
                None if cond.image_embeds is None else cond.image_embeds[idx],
                {k: v[idx] for k, v in cond.extra.items()},
            )  # fmt: skip
            out = out.index_copy(0, idx, self._call(m, lat[idx], sub, t[idx], embeds[idx]))
        return out

    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """``t = 1000·σ'``, ``σ' = sσ/(1+(s−1)σ)``, ``σ ~ U(0,1)``, ``s`` = flow shift.

        Shape: ``(batch,)``.
        """
        return flow_shift_timesteps(self.pipe.scheduler, batch, generator, self.device)

    def denoise(
        self, x: Tensor | Conditioning, timestep: Tensor, noise: Tensor, *, z0: Tensor | None = None
    ) -> Denoised:
        """Flow matching: ``noisy = (1−σ)z0 + σ·noise`` with ``σ = t/1000``; ``pred`` = velocity;
        ``target = noise − z0``; ``x0 = noisy − σ·pred`` (TI2V: frame 0 is the photo's latent).

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
        pred = self._routed(noisy, cond, t, self._embeds(b))
        target = noise - z0
        x0 = noisy - sigma * pred
        if self.expand:
            noisy = torch.cat([first.expand(b, -1, -1, -1, -1), noisy[:, 1:]], 1)
            x0 = torch.cat([first.expand(b, -1, -1, -1, -1), x0[:, 1:]], 1)
            target = torch.cat([pred[:, :1].detach(), target[:, 1:]], 1)
        return Denoised(pred=pred, target=target, x0=x0, z0=z0, noisy=noisy)
