"""No wasted work: the clean-image precompute runs once per image (or batch), never per step, and a
pooled attention estimate never builds the full attention map."""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch.utils._python_dispatch import TorchDispatchMode

from stillguard import protect, protect_batch
from stillguard.methods.advdm import AdvDM


@dataclass
class CountingAdvDM(AdvDM):
    """AdvDM that counts its setup and loss calls and the images each setup saw."""

    def __post_init__(self) -> None:
        super().__post_init__()
        self.setups: list[int] = []
        self.losses = 0

    def setup(self, adapter, x_clean, generator):
        self.setups.append(int(x_clean.shape[0]))
        return super().setup(adapter, x_clean, generator)

    def loss(self, adapter, x, generator, state):
        self.losses += 1
        return super().loss(adapter, x, generator, state)


def test_the_clean_precompute_runs_once_per_image_not_per_step(tiny_cog) -> None:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    m = CountingAdvDM(z0="clean")  # the clean latent is the precompute
    protect(x, tiny_cog, m, steps=4)
    assert m.setups == [1] and m.losses == 4

    m = CountingAdvDM(z0="clean")
    protect_batch([x, x.flip(-1), x.flip(-2), x * 0.5], tiny_cog, m, batch_size=2, steps=3)
    assert m.setups == [2, 2]  # once per batch, covering each of its images once
    assert m.losses == 2 * 3  # one batched loss per step and batch


class Squares(TorchDispatchMode):
    """Records every ``n`` such that some op returned a tensor ending in ``(n, n)``."""

    def __init__(self) -> None:
        super().__init__()
        self.sizes: set[int] = set()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        for t in out if isinstance(out, (tuple, list)) else [out]:
            if isinstance(t, torch.Tensor) and t.dim() >= 3 and t.shape[-1] == t.shape[-2]:
                self.sizes.add(int(t.shape[-1]))
        return out


def _squares(adapter, mode: str) -> tuple[set[int], int]:
    x = torch.rand(1, 3, 32, 32, generator=torch.Generator().manual_seed(0))
    seen = Squares()
    with seen:
        p = protect(x, adapter, "vid-freeze", method_options={"attention_mode": mode}, steps=1)
    return seen.sizes, len(p.losses)


def test_a_pooled_estimate_never_builds_the_full_attention_map(tiny_cog) -> None:
    layer = tiny_cog.layer_names("attention")[0]
    with tiny_cog.capture(attention=[layer], mode="exact") as cap:
        g = torch.Generator().manual_seed(0)
        from stillguard.methods.base import draw

        t, noise = draw(tiny_cog, g)
        tiny_cog.denoise(torch.rand(1, 3, 32, 32), t, noise)
    tokens = cap.attention[layer][0].shape[-1]  # text + video tokens: the full map is tokens^2
    frames = cap.layout[layer]["frames"]
    exact, steps = _squares(tiny_cog, "exact")
    assert tokens in exact and steps == 1  # the check sees a full map when one is built
    pooled, _ = _squares(tiny_cog, "pooled")
    assert tokens not in pooled and frames in pooled  # per-frame maps only, never tokens x tokens
