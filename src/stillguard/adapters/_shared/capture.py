"""Attention capture, the mechanism every adapter's :meth:`~stillguard.adapters.base.Adapter.capture`
shares.

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

What an adapter's ``capture`` does with it: :class:`Capturing` holds the public signature;
:func:`capture_stock` resolves the layer names (attention layers first, then hidden/VAE layers, so
an unknown name fails before anything is swapped), refuses attention modules whose processor is
not the stock one the recording processor copies (a fused or custom processor would be silently
replaced), builds the :class:`~.recorder.Recorder` and opens :func:`capture_context`;
:func:`frames_hook` is the usual pre-hook that notes the batch size and the token-frame count of
each denoiser call for ``pooled`` maps (:func:`packed_frames_hook` for packed tokens); :func:`joint_layer_names` lists the layers of a video
transformer with one kind of attention.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Sequence
from typing import Any

import torch
from torch import nn

from ...errors import CapabilityError, InputError
from ...registry import close_matches
from ..captured import Captured
from .recorder import Recorder


class Capturing:
    """``capture`` of the adapters (a mixin): the public signature, then ``_capture``."""

    def capture(
        self,
        hidden: Sequence[str] = (),
        attention: Sequence[str] = (),
        *,
        mode: str = "exact",
        max_queries: int = 256,
        generator: torch.Generator | None = None,
    ) -> Any:
        """Record block outputs and attention maps of the named layers (see
        :meth:`.base.Adapter.capture` for the modes); what is recorded, in which shapes and
        layouts: the adapter's ``_capture``."""
        return self._capture(hidden, attention, (mode, max_queries, generator))

    def _capture(
        self,
        hidden: Sequence[str],
        attention: Sequence[str],
        options: CaptureOptions,
    ) -> Any:
        raise NotImplementedError  # pragma: no cover - every adapter defines it


def joint_layer_names(
    adapter: Any, kind: str, blocks: list[str] | str, attn: str, what: str
) -> list[str]:
    """Layer names of a video transformer with one kind of attention (joint or full video).

    ``blocks``: the block names (``hidden``), or the name of the transformer's block list
    (``"transformer_blocks"``: ``transformer_blocks.0``, ...); ``attn``: the attention module's
    name inside a block; ``vae``: the encoder's down blocks; ``what`` says which attention the
    model has, for the refusal of ``attention-temporal``/``attention-spatial``.
    """
    if isinstance(blocks, str):
        n = len(getattr(adapter.pipe.transformer, blocks))
        blocks = [f"{blocks}.{i}" for i in range(n)]
    if kind == "hidden":
        return blocks
    if kind in ("attention", "attention-joint"):
        return [f"{b}.{attn}" for b in blocks]
    if kind == "vae":
        n = len(adapter.pipe.vae.encoder.down_blocks)
        return [f"vae.encoder.down_blocks.{i}" for i in range(n)]
    if kind in ("attention-temporal", "attention-spatial"):
        raise CapabilityError(
            f"{adapter.registry_name} has {what} only (no {kind}): use kind='attention'"
        )
    raise InputError(
        f"unknown layer kind {kind!r}: {close_matches(kind, ['hidden', 'attention', 'vae'])}"
    )


#: ``(mode, max_queries, generator)`` of a capture
CaptureOptions = tuple[str, int, "torch.Generator | None"]

#: ``(names, kinds) -> {internal key: module}``
Finder = Callable[[Sequence[str], Sequence[str]], dict[str, nn.Module]]


def frames_hook(
    recorder: Recorder, *, axis: int, patch: int = 1, arg: str = "hidden_states"
) -> Callable[..., None]:
    """A forward pre-hook (with kwargs) that sets ``recorder.context``: ``batch`` (axis 0 of the
    denoiser's input ``arg``, else its first positional argument) and ``token_frames`` (its
    ``axis`` divided by the temporal patch size ``patch``)."""

    def hook(_m: Any, args: tuple, kwargs: dict) -> None:
        lat = kwargs.get(arg, args[0] if args else None)
        recorder.context.update(token_frames=lat.shape[axis] // patch, batch=lat.shape[0])

    return hook


def packed_frames_hook(recorder: Recorder, *, patch: int = 1) -> Callable[..., None]:
    """:func:`frames_hook` for transformers fed flat (packed) tokens with the latent frame count
    as the ``num_frames`` keyword (LTX-Video, LTX-2): ``token_frames = num_frames // patch``."""

    def hook(_m: Any, args: tuple, kwargs: dict) -> None:
        tokens = kwargs.get("hidden_states", args[0] if args else None)
        frames = kwargs.get("num_frames") or 1
        recorder.context.update(token_frames=frames // patch, batch=tokens.shape[0])

    return hook


def capture_stock(
    adapter: Any,
    denoiser: nn.Module,
    hidden: Sequence[str],
    attention: Sequence[str],
    options: CaptureOptions,
    *,
    stock: type | None,
    make: Callable[[Recorder, str, nn.Module], Any],
    hooks: Callable[[Recorder], list[tuple[nn.Module, Callable[..., None]]]],
    hint: str = "",
    find: Finder | None = None,
    show: Callable[[str], str] = str,
    recorder_class: type[Recorder] = Recorder,
) -> Any:
    """The context manager of ``adapter.capture(hidden, attention, mode=, max_queries=,
    generator=)``; ``options`` is ``(mode, max_queries, generator)``.

    Args:
        denoiser: where non-``vae.`` names live.
        stock: the processor class the recording processor stands in for (``None``: no check);
            ``hint`` is appended to the refusal (how to get the stock processor back).
        make: ``(recorder, internal name, module) -> recording processor``.
        hooks: ``recorder -> [(module, pre-hook)]`` filling ``recorder.context``.
        find: name resolution (default: :func:`find_layer` in ``denoiser``);
            ``show`` maps internal keys back to public names in messages.
    """
    if find is None:

        def find(names: Sequence[str], kinds: Sequence[str]) -> dict[str, nn.Module]:
            return {n: find_layer(adapter, n, kinds, denoiser) for n in names}

    attn = find(attention, ["attention"])
    for n, m in attn.items():
        if stock is not None and type(m.processor) is not stock:
            raise CapabilityError(
                f"{show(n)} uses {type(m.processor).__name__}; capture needs the stock "
                f"{stock.__name__}{hint}"
            )
    hid = find(hidden, ["hidden", "vae"])
    recorder = recorder_class(Captured(), *options)
    return capture_context(recorder, attn, lambda n, m: make(recorder, n, m), hid, hooks(recorder))


def block_output(out: Any) -> torch.Tensor:
    """The main tensor of a block's output (tuples: first item; outputs with ``.sample``)."""
    if isinstance(out, torch.Tensor):
        return out
    if isinstance(out, (tuple, list)):
        return block_output(out[0])
    sample = getattr(out, "sample", None)
    if isinstance(sample, torch.Tensor):
        return sample
    raise TypeError(f"cannot find a tensor in block output of type {type(out).__name__}")


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
