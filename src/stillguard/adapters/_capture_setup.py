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

from ..errors import CapabilityError
from ._attention import capture_context, find_layer
from ._capture_recorder import Recorder
from .captured import Captured

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
    options: tuple[str, int, torch.Generator | None],
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
