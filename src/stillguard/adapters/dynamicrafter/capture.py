"""Layer names and capture of the DynamiCrafter adapter (what Vid-Freeze and Anti-I2V read).

Names are module paths inside the UNet (``pipe.unet``), or ``vae.``-prefixed paths inside the VAE,
listed in network order (``input_blocks.0``, ``init_attn``, ``input_blocks.1`` ..., ``middle_block``,
``output_blocks.*``; ``init_attn`` runs right after ``input_blocks.0`` although it is registered
later). Attention kinds: ``attention-temporal`` = ``attn1`` and ``attn2`` of every
``TemporalTransformer`` (both self-attention over frames), ``attention-spatial`` = ``attn1`` of every
``SpatialTransformer`` (self-attention over the pixels of a frame), ``attention`` = both.
"""

from __future__ import annotations

from typing import Any

from ...errors import CapabilityError, InputError
from ...registry import close_matches
from .._shared.capture import capture_context, find_layer
from .._shared.processors import RecordingAttnProcessor
from .._shared.recorder import Recorder
from ..captured import Captured
from .nets.attention import TemporalTransformer

KINDS = ["hidden", "attention", "attention-temporal", "attention-spatial", "vae"]


def _network_order(unet: Any) -> list[str]:
    seq = ["input_blocks.0", "init_attn"]
    seq += [f"input_blocks.{i}" for i in range(1, len(unet.input_blocks))] + ["middle_block"]
    return seq + [f"output_blocks.{i}" for i in range(len(unet.output_blocks))]


def layer_names(pipe: Any, kind: str) -> list[str]:
    """The names of ``kind`` (see the module docstring), in network order."""
    unet = pipe.unet
    if kind in ("attention", "attention-temporal", "attention-spatial"):
        temporal, spatial = [], []
        for name in dict(unet.named_modules()):
            if name.endswith(("transformer_blocks.0.attn1", "transformer_blocks.0.attn2")):
                parent = unet.get_submodule(name.rsplit(".transformer_blocks", 1)[0])
                if isinstance(parent, TemporalTransformer):
                    temporal.append(name)
                elif name.endswith("attn1"):
                    spatial.append(name)
        order = _network_order(unet)

        def key(name: str) -> int:
            parts = name.split(".")
            top = parts[0] if parts[0] in ("init_attn", "middle_block") else ".".join(parts[:2])
            return order.index(top)

        pick = {"attention-temporal": temporal, "attention-spatial": spatial}
        return sorted(pick.get(kind, temporal + spatial), key=key)
    if kind == "hidden":
        return [n for n in _network_order(unet) if n != "init_attn"]
    if kind == "vae":
        n = len(pipe.vae.encoder.down)
        return [f"vae.encoder.down.{i}" for i in range(n)] + ["vae.encoder.mid"]
    if kind == "attention-joint":
        raise CapabilityError(
            "dynamicrafter has separate spatial and temporal attention, no joint maps: "
            "use kind='attention-temporal' or 'attention-spatial'"
        )
    raise InputError(f"unknown layer kind {kind!r}: {close_matches(kind, KINDS)}")


def capture(adapter: Any, hidden: Any, attention: Any, mode: str, max_queries: int, generator: Any) -> Any:  # fmt: skip
    """The capture context of :meth:`Adapter.capture` for a DynamiCrafter adapter."""
    unet = adapter.pipe.unet
    attn = {n: find_layer(adapter, n, ["attention"], unet) for n in attention}
    hid = {n: find_layer(adapter, n, ["hidden", "vae"], unet) for n in hidden}
    temporal = set(layer_names(adapter.pipe, "attention-temporal"))
    recorder = Recorder(Captured(), mode, max_queries, generator)

    def context(_m: Any, args: tuple, kwargs: dict) -> None:
        x = args[0] if args else kwargs["x"]
        recorder.context.update(batch=x.shape[0], token_frames=x.shape[2])

    def make(n: str, _m: Any) -> RecordingAttnProcessor:
        return RecordingAttnProcessor(recorder, n, temporal=n in temporal)

    return capture_context(recorder, attn, make, hid, [(unet, context)])
