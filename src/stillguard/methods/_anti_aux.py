"""Anti-I2V's auxiliary term: CLIP-embedding and LPIPS distance to the clean photo, maximised.

Paper (arXiv 2603.24570, "Loss & Training"): "The auxiliary loss maximizes CLIP feature distance
and LPIPS perceptual distance." Neither network ships with stillguard; both come from LOCAL
folders (safetensors only, never downloaded) through the shared loaders of
:mod:`stillguard.encoders`: CLIP from the method option ``clip_model`` or ``$STILLGUARD_CLIP``,
LPIPS from ``lpips_model`` or ``$STILLGUARD_LPIPS`` (the folders ``--clip DIR`` / ``--lpips DIR``
name elsewhere; ``--set method.clip_model=DIR`` on ``stillguard protect``). A target with its own CLIP image embedding
(SVD) uses that one for the CLIP part. Whatever is missing is skipped, said once at the start
of the run (a logged warning naming the option that supplies it) and listed in the sidecar's
``method_report`` (``terms_run`` / ``terms_skipped``).

Our choices: the CLIP part is the cosine similarity of the embeddings (minimised); the LPIPS part
is ``-LPIPS(x, x_clean)`` (minimised), both against the clean 8-bit photo.
"""

from __future__ import annotations

import logging
import os
from dataclasses import dataclass, field
from typing import Any

from torch import Tensor

log = logging.getLogger(__name__)
CLIP_ENV, LPIPS_ENV = "STILLGUARD_CLIP", "STILLGUARD_LPIPS"
_WARNED: set[tuple[str, int]] = set()
_LOADED: dict[tuple[str, str, str], Any] = {}


def _warn_once(message: str, run: int) -> None:
    """Log ``message`` once per run (``run``: the id of the run's method object)."""
    if (message, run) not in _WARNED:
        _WARNED.add((message, run))
        log.warning(message)


def _load(kind: str, folder: str, adapter: Any) -> Any:
    """A network of ``kind`` ("clip"/"lpips") from ``folder``, cached per folder and device."""
    key = (kind, folder, str(adapter.device))
    if key not in _LOADED:
        from ..encoders import ClipImage, Lpips

        cls = ClipImage if kind == "clip" else Lpips
        _LOADED[key] = cls.from_folder(folder, device=str(adapter.device))
    return _LOADED[key]


@dataclass
class Aux:
    """The parts of the auxiliary term that can run for one image, and what was skipped."""

    clip: Any = None
    clip_ref: Tensor | None = None
    own_embeds: bool = False
    lpips: Any = None
    x_clean: Tensor | None = None
    skipped: dict[str, str] = field(default_factory=dict)

    def terms(self, x: Tensor, image_embeds: Tensor | None) -> dict[str, Tensor]:
        """Raw values: ``clip_cosine`` (to minimise) and ``lpips`` (to maximise), as they ran."""
        from ..losses import cosine

        out: dict[str, Tensor] = {}
        if self.clip_ref is not None:
            emb = image_embeds if self.own_embeds else self.clip(x)
            out["clip_cosine"] = cosine(emb, self.clip_ref)
        if self.lpips is not None:
            out["lpips"] = self.lpips(x, self.x_clean.to(x)).mean()
        return out


def build_aux(
    adapter: Any, x_clean: Tensor, clip_model: str | None, lpips_model: str | None, run: int
) -> Aux:
    """Load what the options and environment provide; warn once per run (``run``: an id of the
    run, e.g. of its method object) for each missing part."""
    aux = Aux()
    clip_dir = clip_model or os.environ.get(CLIP_ENV)
    if "image-embeds" in adapter.capabilities and adapter.encode(x_clean).image_embeds is not None:
        aux.clip_ref = adapter.encode(x_clean).image_embeds.detach()
        aux.own_embeds = True
    elif clip_dir:
        aux.clip = _load("clip", clip_dir, adapter)
        aux.clip_ref = aux.clip(x_clean).detach()
    else:
        aux.skipped["clip_cosine"] = (
            f"no CLIP image encoder: the target has none and no local folder was given (set the "
            f"method option clip_model or {CLIP_ENV})"
        )
    lpips_dir = lpips_model or os.environ.get(LPIPS_ENV)
    if lpips_dir:
        aux.lpips = _load("lpips", lpips_dir, adapter)
        aux.x_clean = x_clean.detach()
    else:
        aux.skipped["lpips"] = (
            f"no LPIPS network: no local folder was given (set the method option lpips_model or "
            f"{LPIPS_ENV})"
        )
    for name, why in aux.skipped.items():
        _warn_once(f"anti-i2v: auxiliary term {name} skipped: {why}", run)
    return aux
