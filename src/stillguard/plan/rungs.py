"""The memory-ladder rungs: what each one changes, in a fixed order from cheapest to costliest.

Order (cheapest in quality first; :mod:`.ladder` climbs it until a plan fits):

1. ``bf16``: weights and activations in bfloat16 (the published checkpoints are bf16).
2. ``gradient-checkpointing``: blocks recompute their forward during backward (adapter option
   ``gradient_checkpointing``): no quality cost, about one more forward of time.
3. ``vae-slicing``: the VAE encodes batch items one by one (adapter option ``vae_slicing``).
4. ``vae-tiling``: the VAE works on overlapping spatial tiles (adapter option ``vae_tiling``).
5. ``sampled-attention=N``: the method reads ``N`` exact query rows of every attention map, each
   against all keys (method options ``attention_mode="sampled"``, ``max_queries=N``): an unbiased
   row subset of the paper's maps (Vid-Freeze Eq. 7), so preferred to pooling; levels start at
   the method's ``max_queries`` and halve down to :data:`MIN_QUERIES`.
6. ``pooled-attention``: the method reads frame-pooled attention instead of the maps (method
   option ``attention_mode="pooled"``): a third-party estimate of frame-to-frame attention whose
   gradient is far from the exact one (``docs/attention-estimates.md``); only when no row count
   fits.
7. ``frames=N``: attack with ``N`` video frames instead of the model's count (adapter option
   ``opt_num_frames``); the video generated later keeps its own count.
8. ``resolution=HxW``: attack at a lower working resolution (adapter options ``height``,
   ``width``); the image keeps its full resolution, the adapter resizes it inside torch.
9. ``depth=N``: attack only the first ``N`` attention layers (method option ``layers="first:N"``).

Rungs 5 and 7-9 have levels (halving); a later level of the same rung replaces the earlier one.
A rung whose option the target or the method does not have is left out (the ladder says which,
and why). Not yet a rung, because no option exists: a truncated forward that stops the denoiser
after the last attacked block (today ``depth`` saves the captured maps, not the later blocks).
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from typing import Any

from ..bounds import check
from ..errors import InputError
from ..registry import close_matches

LADDER = (
    "bf16",
    "gradient-checkpointing",
    "vae-slicing",
    "vae-tiling",
    "sampled-attention",
    "pooled-attention",
    "frames",
    "resolution",
    "depth",
)
_FLAGS = {
    "gradient-checkpointing": "gradient_checkpointing",
    "vae-slicing": "vae_slicing",
    "vae-tiling": "vae_tiling",
}
BF16 = ("bf16", "bfloat16")
#: the fewest query rows per map the ladder tries before it falls back to pooled attention
MIN_QUERIES = 16
#: rungs whose value is required
_VALUED = ("frames", "resolution", "depth")


@dataclass
class Settings:
    """What a plan is built with: the adapter dtype, adapter options and method options."""

    dtype: str = "bf16"
    adapter: dict[str, Any] = field(default_factory=dict)
    method: dict[str, Any] = field(default_factory=dict)

    def copy(self) -> Settings:
        return dataclasses.replace(self, adapter=dict(self.adapter), method=dict(self.method))


def parse(rung: str) -> tuple[str, str | None]:
    """``"frames=25"`` -> ``("frames", "25")``; ``"bf16"`` -> ``("bf16", None)``."""
    name, _, value = rung.partition("=")
    name = name.strip().lower()
    if name not in LADDER:
        raise InputError(
            f"unknown memory-ladder rung {rung!r}: {close_matches(name, list(LADDER))}"
        )
    if name in _VALUED and not value:
        raise InputError(
            f"rung {name!r} needs a value, e.g. frames=25, resolution=360x540, depth=8"
        )
    return name, value.strip() or None


def apply(rung: str, settings: Settings) -> Settings:
    """A copy of ``settings`` with ``rung`` applied (see the module docstring for each rung)."""
    name, value = parse(rung)
    s = settings.copy()
    if name == "bf16":
        s.dtype = "bf16"
    elif name in _FLAGS:
        s.adapter[_FLAGS[name]] = True
    elif name == "sampled-attention":
        s.method["attention_mode"] = "sampled"
        if value:
            s.method["max_queries"] = check(
                "max_queries", _whole(value, rung), "rung sampled-attention"
            )
    elif name == "pooled-attention":
        s.method["attention_mode"] = "pooled"
    elif name == "frames":
        s.adapter["opt_num_frames"] = check("opt_num_frames", _whole(value, rung), "rung frames")
    elif name == "resolution":
        m = re.fullmatch(r"(\d+)x(\d+)", value or "")
        if m is None:
            raise InputError(f"rung {rung!r}: write the resolution as HEIGHTxWIDTH, e.g. 360x540")
        for key, text in (("height", m.group(1)), ("width", m.group(2))):
            s.adapter[key] = check(key, int(text), f"rung resolution: {key}")
    else:
        s.method["layers"] = f"first:{check('depth', _whole(value, rung), 'rung depth')}"
    return s


def apply_all(rungs: list[str] | tuple[str, ...], settings: Settings) -> Settings:
    """Apply ``rungs`` in the given order (a later value of the same rung wins)."""
    for r in rungs:
        settings = apply(r, settings)
    return settings


def in_effect(settings: Settings) -> list[str]:
    """The rungs ``settings`` amount to, in ladder order (``bf16`` when the dtype is bf16)."""
    out = ["bf16"] if str(settings.dtype).lower().replace("torch.", "") in BF16 else []
    out += [r for r, opt in _FLAGS.items() if settings.adapter.get(opt)]
    if settings.method.get("attention_mode") == "sampled":
        q = settings.method.get("max_queries")
        out.append(f"sampled-attention={q}" if q else "sampled-attention")
    if settings.method.get("attention_mode") == "pooled":
        out.append("pooled-attention")
    if settings.adapter.get("opt_num_frames"):
        out.append(f"frames={settings.adapter['opt_num_frames']}")
    if settings.adapter.get("height") and settings.adapter.get("width"):
        out.append(f"resolution={settings.adapter['height']}x{settings.adapter['width']}")
    layers = settings.method.get("layers")
    if isinstance(layers, str) and layers.startswith("first:"):
        out.append(f"depth={layers.split(':', 1)[1]}")
    return out


def _whole(value: str | None, rung: str) -> int:
    try:
        return int(value or "")
    except ValueError:
        raise InputError(f"rung {rung!r}: the value must be a whole number") from None


def attention_estimate(method_options: dict[str, Any]) -> str | None:
    """Which attention a run optimises, in words (``None``: the method reads no attention maps).

    ``method_options``: the method's described options (``Method.describe()``).
    """
    mode = method_options.get("attention_mode")
    if mode is None:
        return None
    if mode == "exact":
        return "exact: every row of every attention map"
    if mode == "sampled":
        q = method_options.get("max_queries")
        return f"sampled: {q} exact query rows per map, each against all keys (unbiased rows)"
    return "pooled: frame-pooled q and k (a third-party estimate, not the maps)"
