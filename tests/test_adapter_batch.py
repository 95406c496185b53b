"""A batch of B images through one adapter call is B separate calls, for every registered adapter.

The protection loop may push several images of one size through one forward/backward of the
target; a per-image loss is then only honest if nothing mixes batch items (shared random draws,
conditioning broadcast from item 0, a hard-coded batch of 1) and every captured map is batch-major:
leading axis ``B' = B·k`` with image ``b`` owning rows ``b·k .. (b+1)·k − 1``, so
``map.reshape(B, -1, ...)`` splits it per image. Each test compares a batch of two with the two
single-image calls (float rounding only), on the tiny random models.
"""

from __future__ import annotations

import dataclasses

import pytest
import torch

from stillguard.adapters import ADAPTERS
from stillguard.errors import InputError

NAMES = ADAPTERS.names()
B = 2
TOL = dict(rtol=1e-4, atol=1e-4)  # float rounding of a different batch size (observed ~1e-6)


def _images() -> torch.Tensor:
    """Two different smooth images ``(2, 3, 40, 56)`` in [0, 1] (not any working size)."""
    g = torch.Generator().manual_seed(77)
    low = torch.rand(B, 3, 5, 7, generator=g)
    return torch.nn.functional.interpolate(low, size=(40, 56), mode="bilinear").clamp(0, 1)


def _inputs(a) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-image timesteps ``(B,)`` and noise ``(B, ...)``: image b's are those of seed b."""
    t = torch.cat([a.sample_timesteps(1, torch.Generator().manual_seed(s)) for s in range(B)])
    noise = torch.cat(
        [
            torch.randn(a.latent_shape(1), generator=torch.Generator().manual_seed(10 + s))
            for s in range(B)
        ]
    )
    assert t.shape == (B,) and not torch.equal(t[0], t[1])
    return t, noise


def _same(batched: torch.Tensor, singles: list[torch.Tensor], what: str) -> None:
    """``batched`` is the singles stacked batch-major: ``reshape(B, -1, ...)`` splits it per image."""
    k = singles[0].shape[0]
    assert batched.shape == (B * k, *singles[0].shape[1:]), what
    split = batched.reshape(B, -1, *batched.shape[1:])
    torch.testing.assert_close(split, torch.stack(singles), **TOL, msg=lambda m: f"{what}: {m}")


@pytest.mark.parametrize("name", NAMES)
def test_encode_batch_is_per_image(name, tiny_adapter):
    a, x = tiny_adapter(name), _images()
    with torch.no_grad():
        both = a.encode(x)
        alone = [a.encode(x[b : b + 1]) for b in range(B)]
    _same(both.image_latents, [c.image_latents for c in alone], "image_latents")
    _same(both.first_latent, [c.first_latent for c in alone], "first_latent")
    assert (both.image_embeds is None) == (alone[0].image_embeds is None)
    if both.image_embeds is not None:
        _same(both.image_embeds, [c.image_embeds for c in alone], "image_embeds")
    for key, value in both.extra.items():
        _same(value, [c.extra[key] for c in alone], f"extra[{key}]")
    # the two images must give different conditionings, else the comparison proves nothing
    assert not torch.allclose(alone[0].image_latents, alone[1].image_latents)


@pytest.mark.parametrize("given", ["image", "conditioning"])
@pytest.mark.parametrize("name", NAMES)
def test_denoise_batch_is_per_image(name, given, tiny_adapter):
    """From the image (encoded inside) or from a conditioning encoded once beforehand."""
    a, x = tiny_adapter(name), _images()
    t, noise = _inputs(a)
    prep = a.encode if given == "conditioning" else (lambda image: image)
    with torch.no_grad():
        both = a.denoise(prep(x), t, noise)
        alone = [a.denoise(prep(x[b : b + 1]), t[b : b + 1], noise[b : b + 1]) for b in range(B)]
    for f in dataclasses.fields(both):
        _same(getattr(both, f.name), [getattr(d, f.name) for d in alone], f.name)
    assert not torch.allclose(alone[0].pred, alone[1].pred)


@pytest.mark.parametrize("name", NAMES)
def test_image_gradient_of_a_batch_is_per_image(name, tiny_adapter):
    """The gradient of the summed per-image losses reaches image b as image b's own loss does."""
    a = tiny_adapter(name)
    t, noise = _inputs(a)

    def grad(x, t, noise):
        x = x.clone().requires_grad_(True)
        out = a.denoise(x, t, noise)
        (out.pred - out.target).pow(2).flatten(1).mean(1).sum().backward()
        return x.grad

    x = _images()
    alone = [grad(x[b : b + 1], t[b : b + 1], noise[b : b + 1]) for b in range(B)]
    _same(grad(x, t, noise), alone, "image gradient")


@pytest.mark.parametrize("name", [n for n in NAMES if "rollout" in ADAPTERS.get(n).capabilities])
def test_rollout_batch_is_per_image(name, tiny_adapter):
    a, x = tiny_adapter(name), _images()
    _, noise = _inputs(a)
    with torch.no_grad():
        both = a.rollout(x, noise, steps=2)
        alone = [a.rollout(x[b : b + 1], noise[b : b + 1], steps=2) for b in range(B)]
    _same(both, alone, "rollout")


def test_ltx_condition_noise_is_drawn_per_image():
    """LTX's keyed draws (posterior sample, ``condition_noise``) are keyed per image; a batch of
    one draws the bytes of one keyed generator over the whole tensors, as before batching."""
    from stillguard.adapters._shared.flow import keyed_generator, keyed_randn

    a = ADAPTERS.get("ltx-i2v").tiny(seed=0)
    a.condition_noise = 0.15  # LTXConditionPipeline's image_cond_noise_scale
    x = _images()
    t, noise = _inputs(a)
    with torch.no_grad():
        both = a.denoise(x, t, noise)
        alone = [a.denoise(x[b : b + 1], t[b : b + 1], noise[b : b + 1]) for b in range(B)]
        a.condition_noise = 0.0
        plain = a.denoise(x, t, noise)
    for f in ("noisy", "pred", "x0"):
        _same(getattr(both, f), [getattr(d, f) for d in alone], f)
    assert not torch.allclose(both.noisy[:, 0], plain.noisy[:, 0])  # the noise is there
    key = (x[:1], noise[:1], t[:1])
    assert torch.equal(
        keyed_randn((1, 4, 3), *key), torch.randn(1, 4, 3, generator=keyed_generator(*key))
    )
    pair = keyed_randn((B, 4, 3), x, noise, t)
    assert torch.equal(pair[1:], keyed_randn((1, 4, 3), x[1:], noise[1:], t[1:]))


def _motion_layers(a) -> list[str]:
    """The first two attention layers of the kind a motion method (Vid-Freeze) uses."""
    kind = "attention" if "attention-joint" in a.capabilities else "attention-temporal"
    return a.layer_names(kind)[:2]


def _captured(a, x, t, noise, mode: str, hidden: list[str], attention: list[str]):
    """One denoiser call under capture; ``sampled`` rows come from a generator seeded afresh, so
    a batch and each single call draw the same rows."""
    gen = torch.Generator().manual_seed(3)
    options = dict(mode=mode, max_queries=5, generator=gen)
    with torch.no_grad(), a.capture(hidden=hidden, attention=attention, **options) as cap:
        a.denoise(x, t, noise)
    return cap


@pytest.mark.parametrize("mode", ["exact", "pooled", "sampled"])
@pytest.mark.parametrize("name", NAMES)
def test_captured_maps_are_batch_major(name, mode, tiny_adapter):
    a, x = tiny_adapter(name), _images()
    t, noise = _inputs(a)
    layers = _motion_layers(a)
    hidden = a.layer_names("hidden")[:1] + a.layer_names("vae")[:1] if mode == "exact" else []
    try:
        both = _captured(a, x, t, noise, mode, hidden, layers)
    except InputError as err:  # pooled is refused on some layer kinds: B=1 must refuse it too
        with pytest.raises(InputError):
            _captured(a, x[:1], t[:1], noise[:1], mode, hidden, layers)
        pytest.skip(f"{name} refuses capture(mode={mode!r}) on {layers}: {err}")
    alone = [_captured(a, x[b : b + 1], t[b : b + 1], noise[b : b + 1], mode, hidden, layers)
             for b in range(B)]  # fmt: skip
    assert set(both.attention) == set(layers) and set(both.hidden) == set(hidden)
    for layer in layers:
        calls = len(alone[0].attention[layer])
        assert len(both.attention[layer]) == calls >= 1
        for i in range(calls):
            maps = [c.attention[layer][i] for c in alone]
            _same(both.attention[layer][i], maps, f"{layer} call {i}")
            assert torch.equal(both.queries[layer][i], alone[0].queries[layer][i])
        assert both.layout[layer] == alone[0].layout[layer]
    for layer in hidden:
        outs = [c.hidden[layer] for c in alone]
        assert len(both.hidden[layer]) == len(outs[0]) >= 1
        for i, value in enumerate(both.hidden[layer]):
            _same(value, [o[i] for o in outs], f"{layer} call {i}")


@pytest.mark.parametrize("name", NAMES)
def test_encode_video_batch_is_per_video(name, tiny_adapter):
    a = tiny_adapter(name)
    g = torch.Generator().manual_seed(5)
    low = torch.rand(B * a.num_frames, 3, 4, 5, generator=g)
    frames = torch.nn.functional.interpolate(low, size=(a.height, a.width), mode="bilinear")
    video = frames.clamp(0, 1).reshape(B, a.num_frames, 3, a.height, a.width)
    with torch.no_grad():
        both = a.encode_video(video)
        alone = [a.encode_video(video[b : b + 1]) for b in range(B)]
    _same(both, alone, "encode_video")
    assert not torch.allclose(alone[0], alone[1])
