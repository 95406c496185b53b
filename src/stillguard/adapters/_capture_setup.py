"""The body every adapter's :meth:`~.base.Adapter.capture` shares.

:func:`capture_stock` resolves the layer names (attention layers first, then hidden/VAE layers, so
an unknown name fails before anything is swapped), refuses attention modules whose processor is not
the stock one the recording processor copies (a fused or custom processor would be silently
replaced), builds the :class:`~._capture_recorder.Recorder` and opens
:func:`~._attention.capture_context`. :func:`frames_hook` is the usual pre-hook that notes the
batch size and the token-frame count of each denoiser call for ``pooled`` maps.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import nn

from ..errors import CapabilityError, InputError
from ..registry import close_matches
from ._attention import capture_context, find_layer
from ._capture_recorder import Recorder
from .captured import Captured


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
    adapter: Any, kind: str, blocks: list[str], attn: str, what: str
) -> list[str]:
    """Layer names of a video transformer with one kind of attention (joint or full video).

    ``blocks``: the block names (``hidden``); ``attn``: the attention module's name inside a
    block; ``vae``: the encoder's down blocks; ``what`` says which attention the model has, for
    the refusal of ``attention-temporal``/``attention-spatial``.
    """
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
        find: name resolution (default: :func:`~._attention.find_layer` in ``denoiser``);
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
