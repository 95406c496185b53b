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

import torch  # noqa: F401  (importable from here before the split)
import torch.nn.functional as F  # noqa: F401,N812
from torch import Tensor, nn  # noqa: F401

from ..errors import InputError
from ..registry import close_matches
from ._capture_processors import RecordingAttnProcessor, RecordingCogVideoXAttnProcessor
from ._capture_recorder import (
    MODES,
    Recorder,
    _own_saved_tensors,
    _probs,
    attention_probs,
    in_backward,
    own_saved_tensors,
)
from ._common import block_output
from .base import Captured

__all__ = [
    "MODES",
    "Captured",
    "Recorder",
    "RecordingAttnProcessor",
    "RecordingCogVideoXAttnProcessor",
    "_own_saved_tensors",
    "_probs",
    "capture_context",
    "attention_probs",
    "find_layer",
    "in_backward",
    "own_saved_tensors",
]


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
