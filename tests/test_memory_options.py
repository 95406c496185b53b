"""Memory switches of dynamicrafter, wan-i2v and skyreels-v2-i2v: they change memory, never values
or gradients.

``gradient_checkpointing`` recomputes blocks in backward, ``vae_slicing`` encodes batch items one by
one (``vae_tiling`` is refused by both, with the reason). For each, on tiny models: the denoiser
output, a captured attention map and the gradient w.r.t. the image equal the switch-off ones
(1e-5), and the switch demonstrably runs (blocks start twice, the encoder once per item). The
switches flow through ``tiny``, ``from_pretrained`` and ``from_config``, the memory ladder's plan
uses them, and the planner's FLOP counter lets checkpointing free what it recomputes.
"""

from __future__ import annotations

import contextlib

import pytest
import torch
from helpers import check_capture_under_checkpointing, draw_inputs

from stillguard.adapters import ADAPTERS
from stillguard.errors import InputError
from stillguard.plan import plan
from stillguard.plan.ladder import _unavailable

TOL = 1e-5


def _denoiser(adapter) -> torch.nn.Module:
    return getattr(adapter.pipe, "transformer", None) or adapter.pipe.unet


def _checkpointing(den: torch.nn.Module) -> bool:
    """diffusers models say it in ``is_gradient_checkpointing`` (some blocks hold the flag)."""
    if hasattr(den, "is_gradient_checkpointing"):
        return bool(den.is_gradient_checkpointing)
    return bool(den.gradient_checkpointing)


def _blocks(adapter) -> list[torch.nn.Module]:
    den = _denoiser(adapter)
    return list(den.input_blocks) if adapter.registry_name == "dynamicrafter" else list(den.blocks)


def _step(adapter, image: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Denoise once (with an attention capture, as Vid-Freeze does) and differentiate a loss of
    the prediction and the captured map w.r.t. the image. Returns ``(pred, map, grad)``."""
    x = image.clone().requires_grad_(True)
    kind = "attention-temporal" if adapter.registry_name == "dynamicrafter" else "attention-joint"
    layer = adapter.layer_names(kind)[0]
    g = torch.Generator().manual_seed(3)
    noise = torch.randn(adapter.latent_shape(image.shape[0]), generator=g)
    t = torch.tensor([500.0])
    with adapter.capture(attention=[layer]) as cap:
        out = adapter.denoise(x, t, noise)
    probs = cap.attention[layer][0]
    loss = out.pred.square().mean() + probs.square().sum()
    (grad,) = torch.autograd.grad(loss, x)
    return out.pred.detach(), probs.detach(), grad


def _image(batch: int = 1) -> torch.Tensor:
    g = torch.Generator().manual_seed(11)
    return torch.rand(batch, 3, 64, 64, generator=g)


def _count_calls(modules: list[torch.nn.Module]) -> list[int]:
    """How often ``modules`` start a forward (a pre-hook: a checkpoint's recomputation stops
    early, once it has what backward needs, so a block's forward *hook* may not fire then)."""
    counts = [0]

    def hook(*_args) -> None:
        counts[0] += 1

    for m in modules:
        m.register_forward_pre_hook(hook)
    return counts


CASES = [
    ("dynamicrafter", {"gradient_checkpointing": True}),
    ("dynamicrafter", {"vae_slicing": True}),
    ("wan-i2v", {"gradient_checkpointing": True}),
    ("skyreels-v2-i2v", {"gradient_checkpointing": True}),
]


@pytest.mark.parametrize(("target", "switches"), CASES)
def test_switch_keeps_outputs_and_gradients(target, switches) -> None:
    cls = ADAPTERS.get(target)
    batch = 2 if "vae_slicing" in switches else 1
    ref = _step(cls.tiny(seed=0), _image(batch))
    ad = cls.tiny(seed=0, **switches)
    if "gradient_checkpointing" in switches:
        calls = _count_calls(_blocks(ad))
    else:
        calls = _count_calls([ad.pipe.vae.encoder])
    got = _step(ad, _image(batch))
    for a, b in zip(got, ref, strict=True):
        assert a.shape == b.shape
        torch.testing.assert_close(a, b, atol=TOL, rtol=TOL)
    n_blocks = len(_blocks(ad))
    if "gradient_checkpointing" in switches:  # each block runs in forward and again in backward
        assert calls[0] == 2 * n_blocks
    else:  # one encoder call per batch item
        assert calls[0] == batch


def test_wan_vae_slicing_keeps_the_condition() -> None:
    """The causal encoder runs once per chunk *and item*; the latents are the batched ones."""
    cls = ADAPTERS.get("wan-i2v")
    plain, sliced = cls.tiny(seed=0), cls.tiny(seed=0, vae_slicing=True)
    assert sliced.pipe.vae.use_slicing is True
    counts = [_count_calls([a.pipe.vae.encoder]) for a in (plain, sliced)]
    with torch.no_grad():
        a, b = (ad.encode(_image(2)).image_latents for ad in (plain, sliced))
    torch.testing.assert_close(a, b, atol=TOL, rtol=TOL)
    assert counts[1][0] == 2 * counts[0][0] > 0


def test_vae_tiling_is_refused_clearly(tmp_path) -> None:
    with pytest.raises(InputError, match="no VAE tiling"):
        ADAPTERS.get("dynamicrafter").from_config(_dc_folder(), device="meta", vae_tiling=True)
    wan = ADAPTERS.get("wan-i2v")
    wan.tiny(seed=0).save_pretrained(str(tmp_path))
    for build in (wan.from_pretrained, wan.from_config):
        with pytest.raises(InputError, match="no VAE tiling"):
            build(str(tmp_path), vae_tiling=True)


def _dc_folder():
    from stillguard.adapters.official import config_folder

    return config_folder("dynamicrafter-256")


@pytest.mark.parametrize(
    "target",
    ["dynamicrafter", "wan-i2v", "ltx-i2v", "hunyuan-i2v", "cogvideox-i2v", "svd", "ltx2-i2v",
     "cosmos2-i2v", "skyreels-v2-i2v", "kandinsky5-i2v", "hunyuan15-i2v", "sana-video-i2v"],
)  # fmt: skip
def test_switches_flow_through_from_pretrained_and_from_config(target, tmp_path) -> None:
    """What a plan (built by ``from_config``) sizes is what a run (``from_pretrained``) does."""
    cls = ADAPTERS.get(target)
    folder = tmp_path / target
    cls.tiny(seed=0).save_pretrained(str(folder))
    slicing = target != "svd"  # SVD's temporal-decoder VAE has no slicing switch
    on = dict(gradient_checkpointing=True, vae_slicing=True) if slicing else {}
    on["gradient_checkpointing"] = True
    for ad in (cls.from_pretrained(str(folder), **on), cls.from_config(str(folder), **on)):
        assert _checkpointing(_denoiser(ad)) is True
        assert getattr(ad.pipe.vae, "use_slicing", False) is slicing
        settings = getattr(ad, "settings", {})
        assert not isinstance(settings, dict) or "gradient_checkpointing" not in settings
    for ad in (cls.from_pretrained(str(folder)), cls.from_config(str(folder))):
        assert _checkpointing(_denoiser(ad)) is False
        assert getattr(ad.pipe.vae, "use_slicing", False) is False


@pytest.mark.parametrize("target", ["dynamicrafter", "wan-i2v"])
def test_ladder_offers_the_switches(target) -> None:
    for rung in ("gradient-checkpointing", "vae-slicing"):
        assert _unavailable(rung, target, "vid-freeze") is None
    p = plan(target, model="tiny", dtype="float32", rungs=["gradient-checkpointing"])
    base = plan(target, model="tiny", dtype="float32")
    assert "gradient-checkpointing" in p.rungs
    assert p.adapter_options.get("gradient_checkpointing") is True
    # the blocks run again in backward: more FLOPs (tiny models: too small for a memory claim;
    # docs/plans.md holds the real-size numbers)
    assert p.flops_per_step > base.flops_per_step


def _chain_peak(checkpointed: bool, counter) -> int:
    """Peak live bytes of one backward through 8 (checkpointed) blocks, measured under ``counter``
    as the planner measures a step."""
    from torch.utils.checkpoint import checkpoint

    from stillguard.plan.memory import MemoryTracker

    torch.manual_seed(0)

    def block() -> torch.nn.Module:
        return torch.nn.Sequential(
            torch.nn.Linear(64, 256), torch.nn.Tanh(), torch.nn.Linear(256, 64)
        )

    blocks = [block() for _ in range(8)]
    for b in blocks:
        b.requires_grad_(False)
    x = torch.randn(256, 64, requires_grad=True)
    tracker = MemoryTracker()
    with counter, tracker:
        h = x * 1  # not a leaf: the stock counter's module hooks refuse leaves in autograd.grad
        for b in blocks:
            h = checkpoint(b, h, use_reentrant=False) if checkpointed else b(h)
        torch.autograd.grad(h.square().sum(), x)
    return tracker.peak


def test_flop_counter_lets_checkpointing_free_recomputed_blocks() -> None:
    """The planner counts FLOPs and memory in one pass: its counter must not keep the graphs of
    checkpoint recomputations alive (the stock module tracker's gradient hooks did)."""
    from torch.utils.flop_counter import FlopCounterMode

    from stillguard.plan import flops

    plain, ckpt = (_chain_peak(c, flops.counter()) for c in (False, True))
    assert ckpt < 0.7 * plain
    assert ckpt == _chain_peak(True, contextlib.nullcontext())  # the counter changes nothing
    stock = _chain_peak(True, FlopCounterMode(display=False))
    assert stock > ckpt  # what the fix is about: the stock counter holds every recomputed block
    counted = flops.counter()
    _chain_peak(True, counted)
    assert counted.get_total_flops() > 0


@pytest.mark.parametrize("mode", ["exact", "sampled", "pooled"])
def test_dynamicrafter_capture_under_gradient_checkpointing(image, mode) -> None:
    """A block output and a temporal map recorded once per call, the same gradient, every mode."""
    a = ADAPTERS.get("dynamicrafter").tiny()
    t, noise = draw_inputs(a)
    layer, block = a.layer_names("attention-temporal")[-1], a.layer_names("hidden")[-1]

    def enable() -> None:
        a.pipe.unet.gradient_checkpointing = True

    def options() -> dict:
        return dict(mode=mode, max_queries=8, generator=torch.Generator().manual_seed(5))

    check_capture_under_checkpointing(a, image, t, noise, layer, block, enable, options)
