"""Every method against every compatible tiny adapter, capability checks, and per-method behaviour.

The method x adapter grid is read from the registries, so new methods and adapters are tested
without editing this file.
"""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path

import pytest
import torch
from helpers import random_protector

from stillguard.errors import CapabilityError, InputError
from stillguard.loop import protect
from stillguard.methods.base import Method, draw, resolve_layers, target_image
from stillguard.plugins import ADAPTERS, METHODS

PAIRS = [(m, a) for m in METHODS.names() for a in ADAPTERS.names()]


def _compatible(method: type, caps: frozenset[str]) -> bool:
    return method.requires <= caps and (not method.requires_any or bool(method.requires_any & caps))


def _mean_loss(method: Method, adapter, x_clean, x, n: int = 6) -> float:
    """The method's loss at ``x``, averaged over ``n`` fixed draws (same draws for every ``x``)."""
    state = method.setup(adapter, x_clean, torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(123)
    with torch.no_grad():
        return sum(float(method.loss(adapter, x, g, state)[0]) for _ in range(n)) / n


@pytest.fixture(scope="module")
def protector_file(tmp_path_factory) -> Path:
    """A random protector whose refinement runs ``advdm`` (which every target supports)."""
    return random_protector(tmp_path_factory.mktemp("protector") / "p.safetensors")


@pytest.mark.parametrize("method_name, adapter_name", PAIRS)
def test_method_on_every_adapter(
    method_name, adapter_name, tiny_adapter, image, protector_file
) -> None:
    adapter = tiny_adapter(adapter_name)
    cls = METHODS.get(method_name)
    if not _compatible(cls, adapter.capabilities):
        with pytest.raises(CapabilityError, match=method_name):
            protect(image, adapter, method_name, steps=1)
        return
    eps = 6 / 255
    opts = {"protector": str(protector_file), "refine": 3} if method_name == "amortized" else {}
    p = protect(image, adapter, method_name, steps=3, random_start=False, eps=eps, space="rgb",
                method_options=opts)  # fmt: skip
    if METHODS.build(method_name, **opts).optimizes:
        assert len(p.losses) == len(p.terms) == 3
        assert all(math.isfinite(v) for v in p.losses)
        assert all(math.isfinite(v) for t in p.terms for v in t.values())
    if METHODS.build(method_name, **opts).optimizes:
        assert p.delta.abs().max() > 0  # from a zero start: the gradient reached the image
    else:  # the noise baseline never looks at the model: the same draw with no model at all
        assert p.losses == [] and p.config["steps"] == 0
        assert torch.equal(p.image, protect(image, None, method_name, eps=eps, space="rgb").image)
    assert (p.delta.abs() * 255).round().max() <= 6
    json.dumps(p.config)


class StubAdapter:
    """Offers the given capabilities; fails loudly if the method touches the model."""

    registry_name = "stub"

    def __init__(self, caps: frozenset[str]) -> None:
        self.capabilities = caps
        self.device = torch.device("cpu")
        self.is_real = False

    def __getattr__(self, name: str):  # type: ignore[no-untyped-def]
        raise AssertionError(f"the model was used ({name}) before the capability check")


@pytest.mark.parametrize("method_name", METHODS.names())
def test_capabilities_are_checked_before_any_work(method_name, image) -> None:
    cls = METHODS.get(method_name)
    stub = StubAdapter(frozenset())
    if _compatible(cls, stub.capabilities):
        METHODS.build(method_name).check(stub)  # needs nothing: no error
        return
    with pytest.raises(CapabilityError, match="stub"):
        protect(image, stub, method_name)


def test_vid_freeze_unroll_needs_rollout(image, tiny_cog) -> None:
    with pytest.raises(CapabilityError, match="rollout"):
        protect(image, StubAdapter(frozenset({"attention-joint"})), method_options={"unroll": 2})
    p = protect(image, tiny_cog, "vid-freeze", steps=2, method_options={"unroll": 2})
    assert len(p.losses) == 2 and all(math.isfinite(v) for v in p.losses)


@pytest.mark.parametrize("mode", ["sampled", "pooled"])
def test_vid_freeze_cheap_attention_modes(mode, tiny_cog, image) -> None:
    opts = {"attention_mode": mode, "max_queries": 8}
    p = protect(image, tiny_cog, "vid-freeze", steps=2, method_options=opts)
    assert all(t["excess"] >= -1e-6 for t in p.terms)  # never below the uniform floor


def test_vid_freeze_lowers_the_attention_norm(tiny_cog, image) -> None:
    p = protect(image, tiny_cog, "vid-freeze", steps=10, eps=8 / 255, space="rgb")
    noise = protect(image, tiny_cog, "noise", eps=8 / 255)
    m = METHODS.build("vid-freeze")
    clean = _mean_loss(m, tiny_cog, p.original, p.original)
    prot = _mean_loss(m, tiny_cog, p.original, p.image)
    rand = _mean_loss(m, tiny_cog, p.original, noise.image)
    assert prot < clean and prot < rand


@pytest.mark.parametrize("target", ["first", "input"])
def test_rollout_freeze_lowers_its_loss(target, tiny_cog, image) -> None:
    opts = {"unroll": 2, "target": target}
    p = protect(image, tiny_cog, "rollout-freeze", steps=10, eps=8 / 255, method_options=opts)
    noise = protect(image, tiny_cog, "noise", eps=8 / 255)
    m = METHODS.build("rollout-freeze", **opts)
    clean = _mean_loss(m, tiny_cog, p.original, p.original)
    prot = _mean_loss(m, tiny_cog, p.original, p.image)
    rand = _mean_loss(m, tiny_cog, p.original, noise.image)
    assert prot < clean and prot < rand
    assert set(p.terms[-1]) == {"motion" if target == "first" else "to_input"}


def test_rollout_collapse_pushes_the_video_away_from_the_photo(tiny_cog, image) -> None:
    p = protect(
        image, tiny_cog, "rollout-collapse", steps=10, eps=8 / 255, method_options={"unroll": 2}
    )
    noise = protect(image, tiny_cog, "noise", eps=8 / 255)
    m = METHODS.build("rollout-collapse", unroll=2)
    clean = _mean_loss(m, tiny_cog, p.original, p.original)
    prot = _mean_loss(m, tiny_cog, p.original, p.image)
    rand = _mean_loss(m, tiny_cog, p.original, noise.image)
    assert prot < clean and prot < rand  # the loss is minus the distance: lower = further away
    assert set(p.terms[-1]) == {"away"} and p.terms[-1]["away"] > 0


def test_rollout_freeze_uses_the_models_own_steps(tiny_cog, image) -> None:
    m = METHODS.build("rollout-freeze")
    state = m.setup(tiny_cog, image, torch.Generator().manual_seed(0))
    assert state.steps == tiny_cog.num_inference_steps


def test_anti_i2v_lowers_its_loss(tiny_cog, image) -> None:
    p = protect(image, tiny_cog, "anti-i2v", steps=10, eps=8 / 255, space="rgb")
    m = METHODS.build("anti-i2v")
    clean = _mean_loss(m, tiny_cog, p.original, p.original)
    prot = _mean_loss(m, tiny_cog, p.original, p.image)
    assert prot < clean
    assert {"irc", "ira_denoiser", "ira_vae", "diffusion"} <= set(p.terms[-1])


def test_anti_i2v_default_space_is_dual(tiny_cog, image) -> None:
    p = protect(image, tiny_cog, "anti-i2v", steps=1)
    assert p.config["space"]["name"] == "dual"


def test_anti_i2v_clip_term(tmp_path, tiny_cog, image, caplog) -> None:
    from stillguard.encoders import ClipImage

    ClipImage.tiny().save(tmp_path / "clip")
    opts = {"aux_weight": 1.0, "reference": "static"}
    with caplog.at_level(logging.WARNING):
        p = protect(image, tiny_cog, "anti-i2v", steps=2, method_options=opts)
    assert "clip_cosine skipped" in caplog.text and "clip_cosine" not in p.terms[0]
    opts = {"clip_model": str(tmp_path / "clip"), "reference": "static"}
    q = protect(image, tiny_cog, "anti-i2v", steps=2, method_options=opts)
    assert -1 <= q.terms[0]["clip_cosine"] <= 1


def test_i2vguard_has_no_attention_divergence_at_the_clean_image(tiny_cog, image) -> None:
    x = torch.round(image * 255) / 255
    for mode in ("exact", "sampled"):
        m = METHODS.build("i2vguard", attention_mode=mode, max_queries=8)
        state = m.setup(tiny_cog, x, torch.Generator().manual_seed(0))
        with torch.no_grad():
            _, terms = m.loss(tiny_cog, x, torch.Generator().manual_seed(1), state)
        assert terms["attention_divergence"] < 1e-10


def test_sds_signs_give_opposite_gradients(tiny_cog, image) -> None:
    grads = []
    for sign in ("+", "-"):
        x = image.clone().requires_grad_(True)
        m = METHODS.build("sds", sign=sign)
        state = m.setup(tiny_cog, image, torch.Generator().manual_seed(0))
        loss, _ = m.loss(tiny_cog, x, torch.Generator().manual_seed(7), state)
        (g,) = torch.autograd.grad(loss, x)
        grads.append(g)
    assert grads[0].abs().sum() > 0
    assert torch.allclose(grads[0], -grads[1])


def test_advdm_loss_is_the_negated_diffusion_loss(tiny_cog, image) -> None:
    m = METHODS.build("advdm")
    state = m.setup(tiny_cog, image, torch.Generator().manual_seed(0))
    loss, terms = m.loss(tiny_cog, image, torch.Generator().manual_seed(2), state)
    assert float(loss) == pytest.approx(-terms["diffusion"]) and terms["diffusion"] > 0


def _definition(name: str, adapter, x: torch.Tensor, t, noise) -> torch.Tensor:
    """The loss written out from its definition, independently of the methods' code.

    AdvDM: minus the v-prediction MSE against the velocity of the *perturbed* image's own
    static-video latent. Mist (``dm_weight=1``, gray target): ``MSE(E(x), E(gray)) - L_DM``.
    """
    lat = adapter.encode(x).image_latents  # the conditioning, as the pipeline builds it
    z0 = lat[:, :1].expand_as(lat)  # the perturbed image's latent on every frame, with gradient
    sch = adapter.pipe.scheduler
    t = t.long().reshape(-1)
    pred = adapter._forward(sch.add_noise(z0, noise, t), lat, t, adapter._embeds(1))
    dm = torch.nn.functional.mse_loss(pred, sch.get_velocity(z0, noise, t))
    if name == "advdm":
        return -dm
    gray = adapter.encode(target_image("gray", x)).first_latent.detach()
    return torch.nn.functional.mse_loss(adapter.encode(x).first_latent, gray) - dm


@pytest.mark.parametrize("name", ["advdm", "mist"])
def test_diffusion_loss_follows_the_definition(name, tiny_cog, image) -> None:
    """AdvDM (and Mist's L_DM term) take z0 from the perturbed image: the same value and gradient
    as the definition computed directly; the conditioning-only variant is another attack."""
    x = (image + 4 / 255 * torch.sign(torch.randn_like(image))).clamp(0, 1)
    opts = {"dm_weight": 1.0, "target": "gray"} if name == "mist" else {}
    t, noise = draw(tiny_cog, torch.Generator().manual_seed(5))
    xd = x.clone().requires_grad_(True)
    direct = _definition(name, tiny_cog, xd, t, noise)
    (g_direct,) = torch.autograd.grad(direct, xd)
    cos = {}
    for z0 in ("perturbed", "clean"):
        m = METHODS.build(name, z0=z0, **opts)
        state = m.setup(tiny_cog, image, torch.Generator().manual_seed(0))
        xi = x.clone().requires_grad_(True)
        loss, _ = m.loss(tiny_cog, xi, torch.Generator().manual_seed(5), state)
        if z0 == "perturbed":
            assert float(loss) == pytest.approx(float(direct), rel=1e-5)
        (g,) = torch.autograd.grad(loss, xi)
        cos[z0] = float(torch.nn.functional.cosine_similarity(g.flatten(), g_direct.flatten(), 0))
    assert cos["perturbed"] > 0.9999
    assert cos["clean"] < 0.99  # z0 fixed to the clean image: the conditioning alone is attacked
    with pytest.raises(InputError, match="z0"):
        METHODS.build(name, z0="reference")


@pytest.mark.parametrize("name", METHODS.names())
def test_describe_is_json_and_rebuilds(name) -> None:
    m = METHODS.build(name)
    d = m.describe()
    assert d["name"] == name
    opts = {k: v for k, v in json.loads(json.dumps(d)).items() if k != "name"}
    assert METHODS.build(name, **opts).describe() == d


@pytest.mark.parametrize(
    "name, options",
    [
        ("vid-freeze", {"attention_mode": "full"}),
        ("vid-freeze", {"unroll": -1}),
        ("i2vguard", {"attention_mode": "x"}),
        ("sds", {"sign": "plus"}),
        ("noise", {"distribution": "gauss"}),
        ("anti-i2v", {"irc_last": 0}),
        ("rollout-freeze", {"target": "still"}),
        ("rollout-freeze", {"unroll": -1}),
    ],
)
def test_bad_method_options(name, options) -> None:
    with pytest.raises(InputError):
        METHODS.build(name, **options)


def test_resolve_layers() -> None:
    names = ["b0", "b1", "b2", "b3"]
    assert resolve_layers("all", names, "x") == names
    assert resolve_layers("first:2", names, "x") == ["b0", "b1"]
    assert resolve_layers("last:1", names, "x") == ["b3"]
    assert resolve_layers("0, -1", names, "x") == ["b0", "b3"]
    assert resolve_layers(["b2", 1], names, "x") == ["b2", "b1"]
    for bad in ("first:0", "first:x", "b9", [7]):
        with pytest.raises(InputError):
            resolve_layers(bad, names, "x")


def test_target_images(tmp_path, image) -> None:
    for spec in ("gray", "noise", "pattern", "blur"):
        t = target_image(spec, image)
        assert t.shape == image.shape and 0 <= t.min() and t.max() <= 1
    assert torch.equal(target_image("noise", image), target_image("noise", image))
    blur = target_image("blur", image)
    assert (blur - image).abs().mean() > 0  # a degraded version of the same picture
    from PIL import Image

    Image.new("RGB", (10, 7), (255, 0, 0)).save(tmp_path / "red.png")
    red = target_image(str(tmp_path / "red.png"), image)
    assert red.shape == image.shape and torch.allclose(red[0, 0], torch.ones(80, 72))
    with pytest.raises(InputError):
        target_image("nope.png", image)


def test_truncated_forward_gives_the_same_loss_and_skips_later_blocks(tiny_cog, image) -> None:
    """vid-freeze on the first layer only: the denoiser stops after it (no later block runs),
    and the loss, gradient and result are those of the full forward."""
    blocks = tiny_cog.pipe.transformer.transformer_blocks
    calls: list[int] = []
    hook = blocks[-1].register_forward_hook(lambda *a: calls.append(1))
    try:
        runs = {}
        for truncate in (True, False):
            calls.clear()
            opts = {"layers": "first:1", "truncate": truncate}
            runs[truncate] = protect(image, tiny_cog, "vid-freeze", steps=2, method_options=opts)
            runs[truncate].calls = len(calls)
    finally:
        hook.remove()
    assert runs[True].calls == 0 and runs[False].calls == 2  # the last block: never vs each step
    assert runs[True].losses == runs[False].losses
    assert torch.equal(runs[True].image, runs[False].image)
