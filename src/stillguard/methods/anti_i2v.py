"""Anti-I2V: collapse the generated video by corrupting the denoiser's internal representations.

Paper: Vu, Nguyen, Tran, Tran, "Anti-I2V: Safeguarding your photos from malicious image-to-video
generation", CVPR 2026, arXiv 2603.24570 (no public code; terms from third-party summaries, see
the project's research notes, section 2.3). The minimised total is
``irc_weight*L_IRC + ira_weight*L_IRA + aux_weight*L_aux - diff_weight*L_DM``:

* IRC (Internal Representation Collapse): the last ``irc_last`` denoiser blocks' hidden states are
  pulled onto block ``irc_ref`` (paper: "layer 3", a low-semantic layer), so the deep layers carry
  no more semantics than a shallow one;
* IRA (Internal Representation Anchor): denoiser-block features and VAE-encoder layer features of
  the protected image are pulled toward those of an unrelated target image, at the same noisy
  latent and timestep;
* aux: perceptual CLIP term, maximising the CLIP-embedding distance to the clean image;
* L_DM: the denoising loss, maximised (AdvDM-style).

Needs: ``hidden-states``; uses ``vae-features`` when offered (else the VAE part of IRA is skipped
with a logged warning). Default space ``dual`` (the paper's Lab + DCT Dual-Space Perturbation).

Choices where the sources are silent, tagged [INF] (inferred) or [ENG] (engineering):
    * [INF] all weights 1; [INF] the reference block is not detached (both sides move;
      ``irc_stop_grad=True`` detaches it); blocks are 0-indexed, ``irc_ref=2`` is "layer 3", and
      only the last blocks *after* it are pulled (the reference is clamped to the second-to-last
      block on models with fewer than 4 blocks);
    * [ENG] every feature distance is a *relative* MSE (divided by the mean square of its reference),
      so the terms are scale-free and weigh the same on models whose activations differ by orders
      of magnitude; blocks of different shapes (U-Nets) are compared after
      :func:`stillguard.losses.align_features`;
    * [INF] IRA uses all denoiser blocks and all exposed VAE-encoder layers (the note says "each
      layer"); [ENG] the target is a fixed uniform-noise image by default (``target="noise"``,
      private seed, independent of the run's seed), or ``"gray"``, ``"pattern"`` or a file path;
    * [ENG] both IRA passes use the clean image's static-video latent as ``z0``, with one
      timestep and noise per step, so only the conditioning differs; the ``-L_DM`` term uses it
      too by default (``z0="clean"``: the conditioning alone is attacked); ``z0="perturbed"`` makes
      it AdvDM's term as defined (the perturbed image's own latent, gradient through it; see
      :mod:`stillguard.methods.advdm`). The paper says only "AdvDM-style"; the default is kept so
      that the published efficacy numbers stay reproducible;
    * [ENG] aux uses the adapter's own CLIP image embedding when it has one (``image-embeds``,
      e.g. SVD), else a CLIP vision model from a local folder (``clip_model`` option or the
      ``STILLGUARD_CLIP`` environment variable, safetensors, never downloaded); without either it is
      skipped with a logged warning. LPIPS is not implemented (it needs weights we do not ship).
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..adapters.base import Adapter
from ..errors import InputError, ModelError
from ..losses import cosine, diffusion_loss, feature_mse
from ..registry import METHODS
from .base import (
    Method,
    State,
    detach_conditioning,
    draw,
    flat,
    resolve_layers,
    scalar,
    static_latent,
    target_image,
)

log = logging.getLogger(__name__)
CLIP_ENV = "STILLGUARD_CLIP"
_CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
_CLIP_STD = (0.26862954, 0.26130258, 0.27577711)


class LocalClip:
    """A CLIP vision tower loaded from a local folder (safetensors only), differentiable in the image."""

    def __init__(self, folder: str, device: torch.device) -> None:
        try:
            from transformers import CLIPVisionModelWithProjection
        except ImportError as e:  # pragma: no cover - transformers is a dependency
            raise ModelError(f"the CLIP term needs transformers: {e}") from None
        try:
            model = CLIPVisionModelWithProjection.from_pretrained(
                folder, local_files_only=True, use_safetensors=True
            )
        except (OSError, ValueError) as e:
            raise ModelError(
                f"cannot load a CLIP vision model from {folder!r}: {e}; point clip_model (or "
                f"{CLIP_ENV}) at a folder saved with save_pretrained in safetensors format"
            ) from None
        self.model = model.to(device).eval().requires_grad_(False)
        self.size = int(model.config.image_size)

    def __call__(self, x: Tensor) -> Tensor:
        """Image embeddings. Shape: ``(B,3,H,W)`` in [0,1] -> ``(B, D)``."""
        x = F.interpolate(x, size=(self.size, self.size), mode="bicubic", antialias=True)
        mean = torch.tensor(_CLIP_MEAN, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(_CLIP_STD, device=x.device).view(1, 3, 1, 1)
        dtype = next(self.model.parameters()).dtype
        return self.model(pixel_values=((x - mean) / std).to(dtype)).image_embeds


@METHODS.register("anti-i2v")
@dataclass
class AntiI2V(Method):
    """IRC + IRA + auxiliary CLIP - diffusion loss (see the module docstring)."""

    requires: ClassVar[frozenset[str]] = frozenset({"hidden-states"})
    default_space: ClassVar[str] = "dual"
    irc_weight: float = 1.0
    irc_ref: int = 2
    irc_last: int = 3
    irc_stop_grad: bool = False
    ira_weight: float = 1.0
    ira_layers: str | list[str] = "all"
    vae_layers: str | list[str] = "all"
    target: str = "noise"
    diff_weight: float = 1.0
    aux_weight: float = 1.0
    clip_model: str | None = None

    def __post_init__(self) -> None:
        if self.irc_ref < 0 or self.irc_last < 1:
            raise InputError("irc_ref must be >= 0 and irc_last >= 1")

    # ------------------------------------------------------------------ setup
    @torch.no_grad()
    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        state = State()
        blocks = adapter.layer_names("hidden")
        if len(blocks) < 2:
            raise InputError(f"anti-i2v needs at least 2 denoiser blocks, target has {len(blocks)}")
        ref = min(self.irc_ref, len(blocks) - 2)
        state.irc_ref = blocks[ref]
        state.irc_targets = [b for b in blocks[-self.irc_last :] if blocks.index(b) > ref]
        state.ira = resolve_layers(self.ira_layers, blocks, "hidden") if self.ira_weight else []
        state.vae = []
        if self.ira_weight and "vae-features" in adapter.capabilities:
            state.vae = resolve_layers(self.vae_layers, adapter.layer_names("vae"), "vae")
        elif self.ira_weight:
            log.warning(
                "anti-i2v: target %r exposes no VAE features; IRA uses denoiser blocks only",
                adapter.registry_name,
            )
        state.z0 = static_latent(adapter, x_clean)
        tgt = target_image(self.target, x_clean)
        with adapter.capture(hidden=state.vae) as cap:
            state.tgt_cond = detach_conditioning(adapter.encode(tgt))
            state.tgt_vae = {n: [t.detach() for t in cap.hidden.get(n, [])] for n in state.vae}
        state.clip = None
        state.clip_ref = None
        if self.aux_weight:
            folder = self.clip_model or os.environ.get(CLIP_ENV)
            if "image-embeds" in adapter.capabilities:
                emb = adapter.encode(x_clean).image_embeds
                state.clip_ref = emb.detach() if emb is not None else None
            elif folder:
                state.clip = LocalClip(folder, adapter.device)
                state.clip_ref = state.clip(x_clean).detach()
            if state.clip_ref is None:
                log.warning(
                    "anti-i2v: auxiliary CLIP term skipped (target has no image embedding and no "
                    "local CLIP weights; set clip_model or %s to a safetensors folder)",
                    CLIP_ENV,
                )
        return state

    # ------------------------------------------------------------------ loss

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        hidden = sorted(set([state.irc_ref, *state.irc_targets, *state.ira]))
        with adapter.capture(hidden=hidden + state.vae) as cap:
            cond = adapter.encode(x)
            d = adapter.denoise(cond, t, noise, z0=state.z0)
            feats = {n: flat(cap.hidden, [n]) for n in hidden + state.vae}
        terms: dict[str, float] = {}
        total = torch.zeros((), device=d.pred.device)

        if self.irc_weight and state.irc_targets:
            ref = feats[state.irc_ref][-1]
            ref = ref.detach() if self.irc_stop_grad else ref
            irc = torch.stack(
                [feature_mse(feats[n][-1], ref, relative=True) for n in state.irc_targets]
            )
            irc = irc.mean()
            total = total + self.irc_weight * irc
            terms["irc"] = scalar(irc)
        if self.ira_weight:
            with torch.no_grad(), adapter.capture(hidden=state.ira) as tcap:
                adapter.denoise(state.tgt_cond, t, noise, z0=state.z0)
                tgt = {n: flat(tcap.hidden, [n])[-1].detach() for n in state.ira}
            parts = [feature_mse(feats[n][-1], tgt[n], relative=True) for n in state.ira]
            ira_den = torch.stack(parts).mean()
            ira = ira_den
            terms["ira_denoiser"] = scalar(ira_den)
            if state.vae:
                parts = [
                    feature_mse(a, b, relative=True)
                    for n in state.vae
                    for a, b in zip(feats[n], state.tgt_vae[n], strict=True)
                ]
                ira_vae = torch.stack(parts).mean()
                ira = ira + ira_vae
                terms["ira_vae"] = scalar(ira_vae)
            total = total + self.ira_weight * ira
        if self.aux_weight and state.clip_ref is not None:
            emb = state.clip(x) if state.clip is not None else cond.image_embeds
            aux = cosine(emb, state.clip_ref)
            total = total + self.aux_weight * aux
            terms["clip_cosine"] = scalar(aux)
        if self.diff_weight:
            dm = diffusion_loss(d.pred, d.target)
            total = total - self.diff_weight * dm
            terms["diffusion"] = scalar(dm)
        return total, terms
