"""The protection loop: budget on the saved PNG, determinism, callbacks, EOT, schedules, errors."""

from __future__ import annotations

import hashlib
import json
import math

import numpy as np
import pytest
import torch
from PIL import Image

from stillguard.app.outputs import save_protected
from stillguard.errors import CapabilityError, InputError, StillguardError
from stillguard.loop import ProgressEvent, Protected, protect
from stillguard.settings import step_fraction
from stillguard.spaces import Rgb
from stillguard.transforms import Transform

FAST = dict(steps=3, method_options={"layers": "first:1"})


def _png(path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).astype(np.int16)


def test_budget_holds_on_the_saved_png(tmp_path, tiny_cog, image) -> None:
    eps = 4 / 255
    p = protect(image, tiny_cog, "vid-freeze", eps=eps, space="rgb", **FAST)
    assert isinstance(p, Protected) and p.image.shape == image.shape == (1, 3, 80, 72)
    out = save_protected(p, tmp_path / "prot.png")
    Image.fromarray(np.round(image[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8)).save(
        tmp_path / "orig.png"
    )
    diff = np.abs(_png(out) - _png(tmp_path / "orig.png"))
    assert diff.max() <= round(eps * 255)
    assert diff.max() > 0  # the image did change
    assert sorted(f.name for f in tmp_path.iterdir()) == ["orig.png", "prot.json", "prot.png"]


def test_sidecar_contents(tmp_path, tiny_cog, image) -> None:
    p = protect(image, tiny_cog, "vid-freeze", seed=3, **FAST)
    out = save_protected(p, tmp_path / "a.png")
    side = json.loads((tmp_path / "a.json").read_text())
    assert side["output_file_sha256"] == hashlib.sha256(out.read_bytes()).hexdigest()
    assert side["real_model"] is False and "tiny" in side["warning"]
    assert side["losses"] == p.losses and len(side["terms"]) == 3
    assert side["linf_255"] <= side["budget_255"] == 8
    assert 20 < side["psnr"] < 60 and 0.5 < side["ssim"] <= 1
    cfg = side["config"]
    assert cfg["method"]["name"] == "vid-freeze" and cfg["space"]["name"] == "rgb"
    assert cfg["seed"] == 3 and cfg["steps"] == 3 and cfg["adapter"]["target"] == "cogvideox-i2v"
    assert set(cfg["versions"]) == {"stillguard", "torch", "diffusers"}
    pixels = np.round(p.original[0].permute(1, 2, 0).numpy() * 255).astype(np.uint8).tobytes()
    assert side["input_pixels_sha256"] == hashlib.sha256(pixels).hexdigest()


def test_same_seed_same_bytes_different_seed_differs(tmp_path, tiny_cog, image) -> None:
    paths = []
    for i, seed in enumerate((5, 5, 6)):
        p = protect(image, tiny_cog, "vid-freeze", seed=seed, **FAST)
        paths.append(save_protected(p, tmp_path / f"{i}.png"))
    a, b, c = (q.read_bytes() for q in paths)
    assert a == b
    assert a != c


def test_callback_gets_every_step(tiny_cog, image) -> None:
    events: list[ProgressEvent] = []
    p = protect(image, tiny_cog, "vid-freeze", steps=4, callback=events.append)
    assert [e.step for e in events] == [1, 2, 3, 4] and all(e.steps == 4 for e in events)
    assert [e.loss for e in events] == p.losses
    assert all(b.elapsed >= a.elapsed for a, b in zip(events, events[1:], strict=False))
    assert set(events[0].terms) == {"frobenius", "excess"}


@pytest.mark.parametrize("schedule", ["constant", "cosine", "linear"])
def test_step_schedules(schedule) -> None:
    fr = [step_fraction(i, 11, 0.25, 0.02, schedule) for i in range(11)]
    assert fr[0] == pytest.approx(0.25)
    if schedule == "constant":
        assert fr == [0.25] * 11
    else:
        assert fr[-1] == pytest.approx(0.02)
        assert all(b <= a for a, b in zip(fr, fr[1:], strict=False))
    if schedule == "cosine":  # slow start: the first half stays above the linear ramp
        assert fr[3] > step_fraction(3, 11, 0.25, 0.02, "linear")


class CountingTransform(Transform):
    """Identity that counts its calls and checks it gets a generator."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self, x, generator):  # type: ignore[no-untyped-def]
        assert isinstance(generator, torch.Generator)
        self.calls += 1
        return x * 1.0

    @property
    def label(self) -> str:
        return "counting"


def test_eot_round_robin_and_spec_strings(tiny_cog, image) -> None:
    a, b = CountingTransform(), CountingTransform()
    p = protect(image, tiny_cog, "vid-freeze", eot=[a, b], eot_samples=3, **FAST)
    assert a.calls + b.calls == 9 and {a.calls, b.calls} == {4, 5}
    assert p.config["eot"] == ["counting", "counting"] and p.config["eot_samples"] == 3
    q = protect(image, tiny_cog, "vid-freeze", eot=["jpeg:75", "blur:1.0"], eot_samples=2, **FAST)
    assert q.config["eot"] == ["jpeg:75", "blur:1.0"] and len(q.losses) == 3
    assert all(math.isfinite(v) for v in q.losses)


def test_noise_short_circuits_and_is_still_bounded(tmp_path, tiny_cog, image) -> None:
    p = protect(image, None, "noise", eps=6 / 255, method_options={"distribution": "sign"}, seed=1)
    assert p.losses == [] and p.config["steps"] == 0 and p.config["adapter"] is None
    d = (p.delta * 255).round().abs()
    assert d.max() == 6
    inside = (p.original * 255 >= 6) & (p.original * 255 <= 249)
    assert (d[inside] == 6).all()  # sign noise is +-eps wherever no clipping happens
    save_protected(p, tmp_path / "n.png")
    side = json.loads((tmp_path / "n.json").read_text())
    assert side["real_model"] is False and side["linf_255"] == 6
    q = protect(image, tiny_cog, "noise", seed=1, eps=6 / 255)  # uniform: spread inside the box
    assert q.losses == [] and 0 < (q.delta * 255).round().abs().mean() < 6


def test_zero_steps_is_refused_for_an_optimising_method(tiny_cog, image) -> None:
    # zero steps from a random start is the noise baseline, not vid-freeze: one validation refuses it
    with pytest.raises(InputError, match="steps >= 1.*noise"):
        protect(image, tiny_cog, "vid-freeze", steps=0, random_start=False)
    p = protect(image, None, "noise", steps=50, random_start=False, eps=4 / 255)
    assert p.config["steps"] == 0 and p.config["random_start"] is True and p.losses == []
    assert 0 < (p.delta * 255).round().abs().max() <= 4


def test_space_object_and_eps(tiny_cog, image) -> None:
    p = protect(image, tiny_cog, "vid-freeze", space=Rgb(eps=2 / 255), **FAST)
    assert (p.delta.abs() * 255).round().max() <= 2 and p.config["budget_255"] == 2
    with pytest.raises(InputError, match="disagrees"):
        protect(image, tiny_cog, "vid-freeze", space=Rgb(eps=2 / 255), eps=8 / 255)


@pytest.mark.parametrize(
    "bad, match",
    [
        (torch.rand(2, 3, 16, 16), "shape"),
        (torch.randint(0, 255, (1, 3, 16, 16), dtype=torch.uint8), "float"),
        (torch.rand(1, 3, 16, 16) * 255, r"\[0, 1\]"),
        ("photo.png", "tensor"),
    ],
)
def test_bad_images_are_refused(tiny_cog, bad, match) -> None:
    with pytest.raises(InputError, match=match):
        protect(bad, tiny_cog, "vid-freeze", steps=1)


def test_bad_options_are_refused(tmp_path, tiny_cog, image) -> None:
    with pytest.raises(InputError, match="schedule"):
        protect(image, tiny_cog, schedule="exp")
    with pytest.raises(StillguardError, match="vid-freeze"):
        protect(image, tiny_cog, "vid-freez")
    with pytest.raises(StillguardError, match="layers"):
        protect(image, tiny_cog, method_options={"layer": "all"})
    with pytest.raises(InputError, match="adapter"):
        protect(image, None, "vid-freeze")
    with pytest.raises(CapabilityError):
        protect(image, tiny_cog, "vid-freeze", method_options={"attention": "temporal"})
    p = protect(image, None, "noise")
    with pytest.raises(InputError, match="png"):
        save_protected(p, tmp_path / "x.jpg")
    assert list(tmp_path.iterdir()) == []


def test_default_dual_space_is_deterministic_too(tiny_cog, image) -> None:
    runs = [protect(image[0], tiny_cog, "anti-i2v", steps=2, seed=s) for s in (1, 1, 2)]
    assert runs[0].image.shape == (1, 3, 80, 72)  # a (3,H,W) input is accepted
    assert torch.equal(runs[0].image, runs[1].image)
    assert not torch.equal(runs[0].image, runs[2].image)
    assert runs[0].losses == runs[1].losses
