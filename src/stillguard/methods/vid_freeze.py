"""Vid-Freeze: freeze the generated video by driving the model's attention to uniform.

Paper: Chowdhury, Bala, Jaiswal, Roheda, "Vid-Freeze: Protecting Images from Malicious
Image-to-Video Generation via Temporal Freezing", arXiv 2509.23279. Loss (Eq. 7, coupled case):
``L = (1/L) sum_l ||A_l||_F^2`` over the attention maps of the chosen layers, minimised over an
L-infinity ball with the timestep resampled at every PGD step (Eq. 8). Rows of ``A`` sum to one, so
the loss is smallest when every query attends uniformly to all keys: each frame then copies the
conditioning equally and the video stands still.

Needs: ``attention-joint`` (coupled form: CogVideoX's full spatio-temporal attention) or
``attention-temporal`` (decoupled form: SVD's frame-to-frame temporal attention); ``rollout``
when ``unroll > 0``.

Choices where the paper is silent (no public code):
    * every map is normalised by its row count (see :func:`stillguard.losses.attention_frobenius`);
    * text tokens (joint-attention models: CogVideoX...): one convention in every attention mode,
      the video query rows against the video keys, each row renormalised over them
      (:mod:`._video_maps`); before, ``exact`` kept text rows and keys, ``sampled`` text keys and
      ``pooled`` neither;
    * ``layers="all"`` attention layers by default; ``"first:N"`` saves memory on big models;
    * ``attention_mode="exact"`` by default (full maps; fine on tiny models); ``"sampled"`` takes
      ``max_queries`` exact rows against all keys (an unbiased row subset of Eq. 7: the faithful
      way to save memory, and what the memory ladder picks first on real CogVideoX, whose full
      maps do not fit); ``"pooled"`` is the frame-pooled approximation of a third-party
      re-implementation, whose gradient is far from the exact one (``docs/attention-estimates.md``);
    * one timestep and noise per step from :meth:`Adapter.sample_timesteps` (the model's training
      distribution); ``unroll=K`` instead runs ``K`` differentiable sampler steps from pure noise
      and averages over every denoiser call, our reading of the paper's "sampling steps" ablation;
    * the ``excess`` term (loss minus its uniform floor) is logged: 0 means perfectly uniform;
    * ``truncate=True`` (default; the loss is unchanged): with ``unroll=0`` the denoiser stops
      right after the last attacked layer is recorded (:func:`stillguard.adapters.truncated_after`),
      so with ``layers="first:N"`` the blocks after N are neither computed nor back-propagated;
    * batches (``protect_batch``): the loss is one value per image (each map split batch-major);
      not with ``attention_mode="sampled"`` (the query rows would be shared) or ``unroll > 0``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..adapters import StopForward, truncated_after
from ..adapters.base import Adapter
from ..errors import CapabilityError, InputError
from ..losses import attention_frobenius, uniform_attention_floor
from ..registry import METHODS
from ._video_maps import video_maps
from .base import ATTENTION_MODES, Method, State, attention_kind, draw, logged, resolve_layers


@METHODS.register("vid-freeze")
@dataclass
class VidFreeze(Method):
    """Minimise the squared Frobenius norm of attention maps (see the module docstring)."""

    requires_any: ClassVar[frozenset[str]] = frozenset({"attention-joint", "attention-temporal"})
    layers: str | list[str] = "all"
    attention: str = "auto"
    attention_mode: str = "exact"
    max_queries: int = 256
    unroll: int = 0
    truncate: bool = True

    def __post_init__(self) -> None:
        if self.attention_mode not in ATTENTION_MODES:
            raise InputError(
                f"attention_mode must be one of {', '.join(ATTENTION_MODES)}, got {self.attention_mode!r}"
            )
        if self.unroll < 0 or self.max_queries < 1:
            raise InputError("unroll must be >= 0 and max_queries >= 1")

    def batchable(self) -> bool:
        """Batches need each image's own draws: not with sampled query rows or a rollout."""
        return self.attention_mode != "sampled" and not self.unroll

    def check(self, adapter: Adapter) -> None:
        super().check(adapter)
        attention_kind(adapter, self.attention)
        if self.unroll and "rollout" not in adapter.capabilities:
            raise CapabilityError(
                f"vid-freeze with unroll={self.unroll} needs a differentiable rollout, which target "
                f"{adapter.registry_name!r} does not offer; use unroll=0"
            )

    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        state = State()
        kind = attention_kind(adapter, self.attention)
        state.layers = resolve_layers(self.layers, adapter.layer_names(kind), "attention")
        return state

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        t, noise = draw(adapter, generator)
        with adapter.capture(
            attention=state.layers,
            mode=self.attention_mode,
            max_queries=self.max_queries,
            generator=generator,
        ) as cap:
            if self.unroll:
                adapter.rollout(x, noise, self.unroll)
            else:
                with truncated_after(state.layers if self.truncate else None):
                    try:
                        adapter.denoise(x, t, noise)
                    except StopForward:
                        pass  # every attacked layer is recorded: the later blocks are not needed
            maps, text = video_maps(cap, state.layers)
            loss = attention_frobenius(maps, x.shape[0], text)
            floor = uniform_attention_floor(maps, text)
        value = logged(loss)
        return loss, {"frobenius": value, "excess": value - floor}
