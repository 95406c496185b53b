"""Recording attention processors and the capture context shared by the adapters.

diffusers computes attention with fused SDPA and never materialises the probabilities. To read
them, :func:`capture_context` swaps the processor of the chosen ``Attention`` modules for a
recording copy of the stock one: SDPA still computes the output from the very same q, k, v (so
the model's outputs stay bit-identical), and ``softmax(q kᵀ / sqrt(d))`` is computed *in
addition*, with autograd, for the rows the chosen mode asks for:

* ``exact``: every query row against every key (CogVideoX: text rows and columns included, since
  the papers' maps are the joint ones);
* ``sampled``: ``max_queries`` random query rows (video rows only for CogVideoX), drawn from the
  caller's ``torch.Generator`` at each call, each exact against all keys;
* ``pooled``: q and k of the video tokens are mean-pooled per latent frame first, giving
  ``F×F`` maps. This is a cheap *estimate* of frame-to-frame attention, not the mean of the true
  token-level maps (softmax and mean do not commute); text tokens are left out.

The scale is SDPA's default ``1/sqrt(head_dim)``, which is what both stock processors use.
Processors keep the stock ``__call__`` signature, because ``Attention.forward`` silently drops
keyword arguments that the processor does not declare; settings travel on the processor object.
Gradient checkpointing re-runs the blocks during ``backward``, possibly after the capture has
closed (with the stock processors back). So the probabilities are computed under their own
saved-tensor hooks, outside the checkpoint's bookkeeping: the re-run then saves the same tensors
whichever processor runs it, and the re-runs record nothing (one entry per denoiser call).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..errors import InputError
from ..registry import close_matches
from ._common import block_output
from .base import Captured

MODES = ("exact", "sampled", "pooled")


def in_backward() -> bool:
    """True while autograd runs a backward pass (e.g. a checkpoint recomputation)."""
    try:
        return torch._C._current_graph_task_id() != -1
    except AttributeError:  # pragma: no cover - very old torch
        return False


class Recorder:
    """Collects what the recording processors and hooks see into a :class:`Captured`."""

    def __init__(
        self,
        captured: Captured,
        mode: str,
        max_queries: int,
        generator: torch.Generator | None,
    ) -> None:
        if mode not in MODES:
            raise InputError(f"unknown capture mode {mode!r}: choose one of {', '.join(MODES)}")
        if mode == "sampled" and generator is None:
            raise InputError(
                "capture(mode='sampled') draws random query rows: pass generator=torch.Generator()"
                ".manual_seed(seed) so that runs are reproducible"
            )
        if max_queries < 1:
            raise InputError(f"max_queries must be >= 1, got {max_queries}")
        self.captured = captured
        self.mode = mode
        self.max_queries = max_queries
        self.generator = generator
        #: facts about the current denoiser call set by a pre-hook (e.g. latent frames, batch)
        self.context: dict[str, int] = {}

    @property
    def active(self) -> bool:
        return not in_backward()

    def rows(self, n: int, device: torch.device) -> Tensor:
        """Sorted random subset of ``range(n)`` of size ``min(n, max_queries)``."""
        if n <= self.max_queries:
            return torch.arange(n, device=device)
        perm = torch.randperm(n, generator=self.generator, device=self.generator.device)
        return perm[: self.max_queries].sort().values.to(device)

    def add_attention(self, name: str, probs: Tensor, rows: Tensor, layout: dict[str, int]) -> None:
        self.captured.attention.setdefault(name, []).append(probs)
        self.captured.queries.setdefault(name, []).append(rows)
        self.captured.layout[name] = layout

    def add_hidden(self, name: str, value: Tensor) -> None:
        if not self.active:
            return
        self.captured.hidden.setdefault(name, []).append(value)


def _own_saved_tensors() -> Any:
    """Saved-tensor hooks that keep the probability ops out of a surrounding checkpoint."""
    return torch.autograd.graph.saved_tensors_hooks(lambda t: t, lambda t: t)


def _probs(q: Tensor, k: Tensor, mask: Tensor | None) -> Tensor:
    logits = (q @ k.transpose(-1, -2)) * (q.shape[-1] ** -0.5)
    if mask is not None:
        logits = logits + mask
    return logits.float().softmax(-1).to(q.dtype)


class RecordingCogVideoXAttnProcessor:
    """``CogVideoXAttnProcessor2_0`` plus probability recording (see the module docstring)."""

    def __init__(self, recorder: Recorder, name: str) -> None:
        self.recorder = recorder
        self.name = name

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor,
        attention_mask: Tensor | None = None,
        image_rotary_emb: Tensor | None = None,
    ) -> tuple[Tensor, Tensor]:
        from diffusers.models.embeddings import apply_rotary_emb

        text_len = encoder_hidden_states.size(1)
        hidden_states = torch.cat([encoder_hidden_states, hidden_states], dim=1)
        batch, seq_len, _ = hidden_states.shape
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        query = attn.to_q(hidden_states)
        key = attn.to_k(hidden_states)
        value = attn.to_v(hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        if image_rotary_emb is not None:
            query[:, :, text_len:] = apply_rotary_emb(query[:, :, text_len:], image_rotary_emb)
            if not attn.is_cross_attention:
                key[:, :, text_len:] = apply_rotary_emb(key[:, :, text_len:], image_rotary_emb)
        self._record(query, key, attention_mask, text_len)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        encoder_hidden_states, out = out.split([text_len, out.size(1) - text_len], dim=1)
        return out, encoder_hidden_states

    def _record(self, query: Tensor, key: Tensor, mask: Tensor | None, text_len: int) -> None:
        if self.recorder.active:
            with _own_saved_tensors():
                self._record_probs(query, key, mask, text_len)

    def _record_probs(self, query: Tensor, key: Tensor, mask: Tensor | None, text_len: int) -> None:
        rec = self.recorder
        n_video = query.shape[2] - text_len
        frames = rec.context.get("token_frames", 1)
        layout = {"text": text_len, "frames": frames, "per_frame": n_video // frames}
        if rec.mode == "exact":
            rows = torch.arange(query.shape[2], device=query.device)
            probs = _probs(query, key, mask)
        elif rec.mode == "sampled":
            rows = text_len + rec.rows(n_video, query.device)
            probs = _probs(query[:, :, rows], key, None if mask is None else mask[:, :, rows])
        else:
            b, h, _, d = query.shape
            qp = query[:, :, text_len:].reshape(b, h, frames, -1, d).mean(3)
            kp = key[:, :, text_len:].reshape(b, h, frames, -1, d).mean(3)
            rows = torch.arange(frames, device=query.device)
            probs = _probs(qp, kp, None)
            layout = {"text": 0, "frames": frames, "per_frame": 1}
        rec.add_attention(self.name, probs, rows, layout)


class RecordingAttnProcessor:
    """``AttnProcessor2_0`` (the legacy ``Attention`` family, e.g. SVD's UNet) plus recording.

    ``temporal`` marks attention whose tokens are frames (SVD's temporal blocks: the batch axis is
    ``B·h·w``); there ``pooled`` mean-pools q and k over the spatial positions of each video.
    """

    def __init__(self, recorder: Recorder, name: str, temporal: bool = False) -> None:
        self.recorder = recorder
        self.name = name
        self.temporal = temporal

    def __call__(
        self,
        attn: Any,
        hidden_states: Tensor,
        encoder_hidden_states: Tensor | None = None,
        attention_mask: Tensor | None = None,
        temb: Tensor | None = None,
        *args: Any,
        **kwargs: Any,
    ) -> Tensor:
        residual = hidden_states
        if attn.spatial_norm is not None:
            hidden_states = attn.spatial_norm(hidden_states, temb)
        input_ndim = hidden_states.ndim
        if input_ndim == 4:
            b4, channel, height, width = hidden_states.shape
            hidden_states = hidden_states.view(b4, channel, height * width).transpose(1, 2)
        batch, seq_len, _ = (
            hidden_states.shape if encoder_hidden_states is None else encoder_hidden_states.shape
        )
        if attention_mask is not None:
            attention_mask = attn.prepare_attention_mask(attention_mask, seq_len, batch)
            attention_mask = attention_mask.view(batch, attn.heads, -1, attention_mask.shape[-1])
        if attn.group_norm is not None:
            hidden_states = attn.group_norm(hidden_states.transpose(1, 2)).transpose(1, 2)
        query = attn.to_q(hidden_states)
        if encoder_hidden_states is None:
            encoder_hidden_states = hidden_states
        elif attn.norm_cross:
            encoder_hidden_states = attn.norm_encoder_hidden_states(encoder_hidden_states)
        key = attn.to_k(encoder_hidden_states)
        value = attn.to_v(encoder_hidden_states)
        head_dim = key.shape[-1] // attn.heads
        query = query.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        key = key.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        value = value.view(batch, -1, attn.heads, head_dim).transpose(1, 2)
        if attn.norm_q is not None:
            query = attn.norm_q(query)
        if attn.norm_k is not None:
            key = attn.norm_k(key)
        self._record(query, key, attention_mask)
        out = F.scaled_dot_product_attention(
            query, key, value, attn_mask=attention_mask, dropout_p=0.0, is_causal=False
        )
        out = out.transpose(1, 2).reshape(batch, -1, attn.heads * head_dim)
        out = out.to(query.dtype)
        out = attn.to_out[0](out)
        out = attn.to_out[1](out)
        if input_ndim == 4:
            out = out.transpose(-1, -2).reshape(b4, channel, height, width)
        if attn.residual_connection:
            out = out + residual
        return out / attn.rescale_output_factor

    def _record(self, query: Tensor, key: Tensor, mask: Tensor | None) -> None:
        if self.recorder.active:
            with _own_saved_tensors():
                self._record_probs(query, key, mask)

    def _record_probs(self, query: Tensor, key: Tensor, mask: Tensor | None) -> None:
        rec = self.recorder
        n = query.shape[2]
        layout = {
            "text": 0,
            "frames": n if self.temporal else 1,
            "per_frame": 1 if self.temporal else n,
        }
        if rec.mode == "exact":
            rows = torch.arange(n, device=query.device)
            probs = _probs(query, key, mask)
        elif rec.mode == "sampled":
            rows = rec.rows(n, query.device)
            probs = _probs(query[:, :, rows], key, None if mask is None else mask[:, :, rows])
        else:
            if not self.temporal:
                raise InputError(
                    f"capture(mode='pooled') needs frame tokens; {self.name} is spatial attention "
                    "(its tokens are pixels of one frame): use mode='exact' or 'sampled' there"
                )
            videos = rec.context.get("batch", 1)
            bhw, h, f, d = query.shape
            qp = query.reshape(videos, bhw // videos, h, f, d).mean(1)
            kp = key.reshape(videos, bhw // videos, h, f, d).mean(1)
            rows = torch.arange(f, device=query.device)
            probs = _probs(qp, kp, None)
        rec.add_attention(self.name, probs, rows, layout)


@contextlib.contextmanager
def capture_context(
    recorder: Recorder,
    attention: dict[str, nn.Module],
    make_processor: Callable[[str, nn.Module], Any],
    hidden: dict[str, nn.Module],
    pre_hooks: list[tuple[nn.Module, Callable[..., None]]] = (),  # type: ignore[assignment]
) -> Iterator[Captured]:
    """Install recording processors and hooks; restore the originals on exit, even on error.

    Captures nest: an inner capture of a layer that an outer one also records takes over that
    layer's attention until it exits (hooks for hidden states record into both).

    Args:
        recorder: where records go (its ``captured`` is yielded).
        attention: layer name -> ``Attention`` module whose processor is swapped.
        make_processor: ``(name, module) -> recording processor``.
        hidden: layer name -> module whose output is recorded with a forward hook.
        pre_hooks: ``(module, fn(module, args, kwargs))`` forward pre-hooks (with kwargs) that fill
            ``recorder.context`` before each denoiser call.
    """
    originals: dict[str, tuple[nn.Module, Any]] = {}
    handles: list[Any] = []
    try:
        for name, module in attention.items():
            originals[name] = (module, module.processor)
            module.set_processor(make_processor(name, module))
        for name, module in hidden.items():

            def hook(_m: nn.Module, _inp: Any, out: Any, name: str = name) -> None:
                recorder.add_hidden(name, block_output(out))

            handles.append(module.register_forward_hook(hook))
        for module, fn in pre_hooks:
            handles.append(module.register_forward_pre_hook(fn, with_kwargs=True))
        yield recorder.captured
    finally:
        for handle in handles:
            handle.remove()
        for module, proc in originals.values():
            module.set_processor(proc)


def find_layer(adapter: Any, name: str, kinds: Sequence[str], denoiser: nn.Module) -> nn.Module:
    """The module behind a layer name of ``adapter.layer_names(kind)`` for one of ``kinds``.

    Names starting with ``vae.`` live in the pipeline's VAE, the others in ``denoiser``.
    """
    valid = [n for k in kinds for n in adapter.layer_names(k)]
    if name not in valid:
        raise InputError(f"unknown layer {name!r}: {close_matches(name, valid)}")
    if name.startswith("vae."):
        return adapter.pipe.vae.get_submodule(name[4:])
    return denoiser.get_submodule(name)
