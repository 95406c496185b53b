"""Anti-I2V: collapse the generated video by corrupting the denoiser's internal representations.

Paper: Vu, Nguyen, Tran, Tran, "Anti-I2V: Safeguarding your photos from malicious image-to-video
generation", CVPR 2026, arXiv 2603.24570 (no public code; terms from third-party summaries, see
the project's research notes, section 2.3, and ``docs/fidelity.md`` for each element). The
minimised total is ``sum_k w_k c_k`` over the terms that run:

* ``irc`` (Internal Representation Collapse): the last ``irc_last`` denoiser blocks' hidden states
  are pulled onto block ``irc_ref`` (paper: "layer 3", a low-semantic layer);
* ``ira_denoiser`` and ``ira_vae`` (Internal Representation Anchoring): denoiser-block features
  (same noisy latent and timestep, only the conditioning differs) and VAE-encoder layer features
  of the protected image are pulled toward those of an unrelated target image;
* ``clip_cosine`` and ``lpips`` (auxiliary, :mod:`._anti_aux`): CLIP and LPIPS distance to the
  clean photo, maximised; each runs only when its network is available (local folders);
* ``diffusion``: the denoising loss, maximised (enters as ``-L_DM``; AdvDM-style).

Conditioning as in the paper's pipeline: the noisy latent of every pass is built from a
**reference video** of the photo (``reference="generate"``: the target's own video of the clean
photo, :mod:`._reference`, cached), and the target is conditioned on a **caption** when one is
given or a local captioner writes one (:mod:`._caption`; the toy models have a fixed null prompt).

Needs: ``hidden-states``; uses ``vae-features`` when offered (else ``ira_vae`` is skipped with a
logged warning). Default space ``dual`` (the paper's Lab + DCT Dual-Space Perturbation).

Choices where the sources are silent, tagged [INF] (inferred) or [ENG] (engineering):
    * [ENG] weights: the paper gives none, and equal weights let one term set every step's signs
      (measured: the VAE anchor, 96-99 %). ``balance="grad-norm"`` (default) sets the weights from
      the image-gradient norms of the first ``balance_steps`` loss calls so that each item of the
      paper's total (IRC, IRA, aux, -L_DM) starts with the same gradient norm, an item's parts
      (IRA: denoiser and VAE; aux: CLIP and LPIPS) sharing it equally (:mod:`._balance`; the
      ``*_weight`` options multiply: ``ira_weight`` both IRA parts, ``aux_weight`` both aux
      parts); ``balance="none"`` uses the ``*_weight`` options as they are (the behaviour before
      balancing);
    * [ENG] a per-term diagnostic (gradient share, sign agreement with the step, weight) at the
      balancing calls and every ``diagnose_every`` calls after: in the loss log
      (``share.<term>``...) and in the sidecar's ``method_report``;
    * [INF] the reference block is not detached (``irc_stop_grad=True`` detaches it); blocks are
      0-indexed, ``irc_ref=2`` is "layer 3", only the last blocks *after* it are pulled (the
      reference is clamped to the second-to-last block on models with fewer than 4 blocks);
    * [ENG] every feature distance is a *relative* MSE (divided by the mean square of its
      reference); under balancing this only weighs the layers inside one term alike;
    * [INF] IRA uses all denoiser blocks and all exposed VAE-encoder layers ("each layer");
      [ENG] its target is ``target="anchor"``: the bundled CC0 natural photo
      (``assets/anchor.png``), or ``"noise"``, ``"gray"``, ``"pattern"`` or a file path;
    * [ENG] IRC and IRA noise the reference latent (detached, fixed for the run); ``z0`` sets the
      diffusion term's clean latent as in :mod:`.advdm`: ``"perturbed"`` (default; AdvDM as
      defined: the candidate's own static-video latent, gradient through it; one more denoiser
      pass) or ``"clean"`` (the detached reference latent: the conditioning alone is attacked,
      the authors' baseline with ``--use_ref``); ``reference="static"`` makes the reference the
      clean photo's static video (no generation; the behaviour before references existed);
    * [ENG] the reference is generated with ``reference_seed`` (fixed, independent of the run's
      seed, like every target of :func:`.base.target_image`) at the optimised frame count.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..adapters.base import Adapter
from ..errors import InputError
from ..losses import diffusion_loss, feature_mse
from ..registry import METHODS
from ._anti_aux import build_aux
from ._balance import BALANCE_MODES, TermBalance
from ._caption import caption_of, prompted, text_conditioning
from ._reference import reference_latent
from .base import (
    Method,
    State,
    check_z0,
    detach_conditioning,
    draw,
    flat,
    resolve_layers,
    scalar,
    static_latent,
    target_image,
)

log = logging.getLogger(__name__)
REFERENCES = ("generate", "static")
#: the paper's items ``L_IRC + L_IRA + L_aux - L_DM``: the parts of one item share its balance
GROUPS = {"ira_denoiser": "ira", "ira_vae": "ira", "clip_cosine": "aux", "lpips": "aux"}


@METHODS.register("anti-i2v")
@dataclass
class AntiI2V(Method):
    """IRC + IRA + auxiliary CLIP/LPIPS - diffusion loss, balanced (see the module docstring)."""

    requires: ClassVar[frozenset[str]] = frozenset({"hidden-states"})
    default_space: ClassVar[str] = "dual"
    irc_weight: float = 1.0
    irc_ref: int = 2
    irc_last: int = 3
    irc_stop_grad: bool = False
    ira_weight: float = 1.0
    ira_layers: str | list[str] = "all"
    vae_layers: str | list[str] = "all"
    target: str = "anchor"
    diff_weight: float = 1.0
    aux_weight: float = 1.0
    clip_model: str | None = None
    lpips_model: str | None = None
    z0: str = "perturbed"
    reference: str = "generate"
    reference_seed: int = 0
    reference_cache: str | None = None
    caption: str = ""
    captioner: str | None = None
    balance: str = "grad-norm"
    balance_steps: int = 5
    diagnose_every: int = 10

    def __post_init__(self) -> None:
        if self.irc_ref < 0 or self.irc_last < 1:
            raise InputError("irc_ref must be >= 0 and irc_last >= 1")
        check_z0(self.z0)
        if self.reference not in REFERENCES:
            raise InputError(
                f"reference must be one of {', '.join(REFERENCES)}, got {self.reference!r}"
            )
        if self.balance not in BALANCE_MODES:
            raise InputError(
                f"balance must be one of {', '.join(BALANCE_MODES)}, got {self.balance!r}"
            )
        if self.balance_steps < 1 or self.diagnose_every < 0:
            raise InputError("balance_steps must be >= 1 and diagnose_every >= 0")

    # ------------------------------------------------------------------ setup
    @torch.no_grad()
    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        state = State(skipped={})
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
            state.skipped["ira_vae"] = f"target {adapter.registry_name!r} exposes no VAE features"
            log.warning("anti-i2v: %s; IRA uses denoiser blocks only", state.skipped["ira_vae"])
        state.caption = caption_of(x_clean, self.caption, self.captioner, adapter.device)
        state.text = text_conditioning(adapter, state.caption)
        with prompted(adapter, state.text):
            if self.reference == "generate":
                state.z_ref = reference_latent(
                    adapter, x_clean, self.reference_seed, caption=state.caption,
                    cache_dir=self.reference_cache,
                )  # fmt: skip
            else:
                state.z_ref = static_latent(adapter, x_clean)
        tgt = target_image(self.target, x_clean)
        with adapter.capture(hidden=state.vae) as cap:
            state.tgt_cond = detach_conditioning(adapter.encode(tgt))
            state.tgt_vae = {n: [t.detach() for t in cap.hidden.get(n, [])] for n in state.vae}
        if self.irc_weight and not state.irc_targets:
            state.skipped["irc"] = f"target {adapter.registry_name!r} has no block after irc_ref"
        state.aux = None
        if self.aux_weight:
            state.aux = build_aux(adapter, x_clean, self.clip_model, self.lpips_model, id(self))
            state.skipped.update(state.aux.skipped)
        multipliers = {"irc": self.irc_weight, "ira_denoiser": self.ira_weight,
                       "ira_vae": self.ira_weight, "clip_cosine": self.aux_weight,
                       "lpips": self.aux_weight, "diffusion": self.diff_weight}  # fmt: skip
        state.balance = TermBalance(
            {k: v for k, v in multipliers.items() if v and k not in state.skipped},
            GROUPS, self.balance, self.balance_steps, self.diagnose_every,
        )  # fmt: skip
        return state

    # ------------------------------------------------------------------ loss
    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        hidden = sorted(set([state.irc_ref, *state.irc_targets, *state.ira]))
        with prompted(adapter, state.text):
            with adapter.capture(hidden=hidden + state.vae) as cap:
                cond = adapter.encode(x)
                d = adapter.denoise(cond, t, noise, z0=state.z_ref)
                feats = {n: flat(cap.hidden, [n]) for n in hidden + state.vae}
            raw = self._terms(adapter, state, feats, t, noise)
            if state.aux is not None:
                raw.update(state.aux.terms(x, cond.image_embeds))
            if self.diff_weight:
                if self.z0 == "perturbed":
                    d = adapter.denoise(cond, t, noise)  # z0: the candidate's own latent, live
                raw["diffusion"] = diffusion_loss(d.pred, d.target)
        signs = {"lpips": -1.0, "diffusion": -1.0}  # maximised quantities enter negated
        contrib = {
            k: signs.get(k, 1.0) * v for k, v in raw.items() if k in state.balance.multipliers
        }
        total, diag = state.balance.combine(contrib, x)
        logged = {k: scalar(v) for k, v in raw.items()}
        logged.update(diag)
        return total, logged

    def _terms(
        self, adapter: Adapter, state: State, feats: dict[str, list[Tensor]], t: Tensor,
        noise: Tensor,
    ) -> dict[str, Tensor]:  # fmt: skip
        """IRC and the two IRA parts (raw, minimised) from the captured features."""
        out: dict[str, Tensor] = {}
        if self.irc_weight and state.irc_targets:
            ref = feats[state.irc_ref][-1]
            ref = ref.detach() if self.irc_stop_grad else ref
            parts = [feature_mse(feats[n][-1], ref, relative=True) for n in state.irc_targets]
            out["irc"] = torch.stack(parts).mean()
        if self.ira_weight:
            with torch.no_grad(), adapter.capture(hidden=state.ira) as tcap:
                adapter.denoise(state.tgt_cond, t, noise, z0=state.z_ref)
                tgt = {n: flat(tcap.hidden, [n])[-1].detach() for n in state.ira}
            parts = [feature_mse(feats[n][-1], tgt[n], relative=True) for n in state.ira]
            out["ira_denoiser"] = torch.stack(parts).mean()
            if state.vae:
                parts = [
                    feature_mse(a, b, relative=True)
                    for n in state.vae
                    for a, b in zip(feats[n], state.tgt_vae[n], strict=True)
                ]
                out["ira_vae"] = torch.stack(parts).mean()
        return out

    def report(self, state: State) -> dict[str, Any]:
        """What ran for this image: terms, skipped terms (why), weights, diagnostic, conditioning."""
        bal = state.balance.report()
        return {
            "terms_run": list(state.balance.multipliers),
            "terms_skipped": dict(state.skipped),
            "reference": self.reference,
            "z0": self.z0,
            "caption": state.caption,
            **bal,
        }
