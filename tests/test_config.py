"""Presets, strict validation, overrides and the config hash (stillguard.app.config)."""

from __future__ import annotations

import inspect
import math

import pytest

from stillguard.app import config as C
from stillguard.app import presets as P
from stillguard.errors import StillguardError
from stillguard.registry import METHODS
from stillguard.settings import parse_eps


def test_shipped_presets_load_and_say_what_they_are():
    names = P.list_presets()
    assert {"default", "debug", "anti-i2v", "strong", "demo"} <= set(names)
    for name in names:
        cfg = C.load_preset(name)
        assert cfg.description and cfg.method_name in METHODS
        assert 0 < cfg.loop.eps <= 32 / 255
    default = C.load_preset("default")
    assert default.method_name == "vid-freeze" and math.isclose(default.loop.eps, 8 / 255)
    assert (
        default.loop.steps == 100
        and default.model == C.default_model("cogvideox-i2v") == "THUDM/CogVideoX-5b-I2V"
    )
    assert C.load_preset("debug").loop.steps <= 5 and C.load_preset("debug").model == "tiny"
    assert math.isclose(C.load_preset("strong").loop.eps, 16 / 255)
    assert C.load_preset("anti-i2v").method_name == "anti-i2v"


def test_protect_kwargs_bind_to_protect():
    from stillguard.loop import protect

    kwargs = C.load_preset("strong").protect_kwargs()
    inspect.signature(protect).bind(None, None, **kwargs)  # raises on an unknown keyword
    assert kwargs["config"].eot and kwargs["method"] == "vid-freeze"


@pytest.mark.parametrize(
    "text,expect",
    [("8/255", 8 / 255), (" 4/255 ", 4 / 255), ("0.03", 0.03), (0.05, 0.05), (32 / 255, 32 / 255)],
)
def test_parse_eps_ok(text, expect):
    assert math.isclose(parse_eps(text), expect)


@pytest.mark.parametrize(
    "bad", ["0", "-1/255", "33/255", "abc", "1/0", "nan", True, 1, None, "8/x"]
)
def test_parse_eps_refuses(bad):
    with pytest.raises(StillguardError, match="eps"):
        parse_eps(bad)


def test_parse_override_types():
    assert P.parse_override("protect.steps=5") == (["protect", "steps"], 5)
    assert P.parse_override("protect.eps=8/255") == (["protect", "eps"], "8/255")
    assert P.parse_override("method.layers=['a', 'b']") == (["method", "layers"], ["a", "b"])
    assert P.parse_override("target.model=owner/name") == (["target", "model"], "owner/name")
    assert P.parse_override("protect.random_start=false")[1] is False
    assert P.parse_override("target.options.num_frames=9") == (
        ["target", "options", "num_frames"],
        9,
    )
    for bad in ("protect", "steps=5", "protect.=3", ".x=1"):
        with pytest.raises(StillguardError, match="section.key=value"):
            P.parse_override(bad)


def test_precedence_preset_flags_sets():
    cfg = C.build_config("debug")
    assert cfg.loop.steps == C.load_preset("debug").loop.steps
    assert C.build_config("debug", steps=7).loop.steps == 7
    cfg = C.build_config("debug", steps=7, sets=["protect.steps=9", "method.max_queries=64"])
    assert cfg.loop.steps == 9 and cfg.method_options == {"max_queries": 64}
    assert math.isclose(C.build_config("debug", eps="4/255").loop.eps, 4 / 255)
    assert C.build_config("default", model="tiny").model == "tiny"


@pytest.mark.parametrize(
    "kwargs,pattern",
    [
        ({"sets": ["protect.stepz=3"]}, r"protect\.stepz.*'steps'"),
        ({"sets": ["methd.name=x"]}, r"section \[methd\].*'method'"),
        ({"sets": ["protect.steps='x'"]}, r"\[protect\].*steps='x' is not a whole number in \["),
        ({"sets": ["protect.random_start=1"]}, r"random_start must be true or false"),
        ({"sets": ["protect.steps=true"]}, r"\[protect\].*steps=True is not a whole number in \["),
        ({"sets": ["method.foo=1"]}, r"method\.foo for method 'vid-freeze'"),
        ({"sets": ["method.max_queries=1.5"]}, r"max_queries.*int"),
        ({"sets": ["protect.eot=['jpg']"]}, r"jpeg"),
        ({"sets": ["protect.schedule='cosin'"]}, r"cosine"),
        ({"sets": ["protect.steps=0"]}, r"steps"),
        ({"sets": ["space.name='rbg'"]}, r"rgb"),
        ({"sets": ["space.eps=0.01", "space.name='rgb'"]}, r"\[protect\]"),
        ({"sets": ["target.devce='cpu'"]}, r"device"),
        ({"method": "vid-freze"}, r"vid-freeze"),
        ({"target": "cogvideo-i2v"}, r"cogvideox-i2v"),
        ({"eps": "40/255"}, r"32/255"),
        ({"dtype": "float8"}, r"unknown dtype"),
        ({"device": "gpu0"}, r"not a torch device"),
    ],
)
def test_strict_validation_names_the_key(kwargs, pattern):
    with pytest.raises(StillguardError, match=pattern) as err:
        C.build_config("debug", **kwargs)
    assert "\n" not in str(err.value)


def test_unknown_preset_and_bad_files(tmp_path):
    with pytest.raises(StillguardError, match="did you mean 'debug'"):
        C.load_preset("debgu")
    with pytest.raises(StillguardError, match="cannot read preset"):
        C.load_preset(tmp_path / "missing.toml")
    bad = tmp_path / "bad.toml"
    bad.write_text("[protect\nsteps = 3\n")
    with pytest.raises(StillguardError, match="not valid TOML"):
        C.load_preset(bad)


def test_user_preset_file_and_method_switch_drops_its_options(tmp_path):
    p = tmp_path / "mine.toml"
    p.write_text(
        'description = "mine"\n[protect]\nsteps = 4\n[method]\nname = "vid-freeze"\nmax_queries = 32\n'
    )
    cfg = C.load_preset(p)
    assert (
        cfg.loop.steps == 4
        and cfg.method_options == {"max_queries": 32}
        and cfg.description == "mine"
    )
    switched = C.build_config(p, method="noise")
    assert switched.method_name == "noise" and switched.method_options == {}
    kept = C.build_config(p, method="vid-freeze")
    assert kept.method_options == {"max_queries": 32}


def test_config_hash_is_stable_and_covers_fields():
    a, b = C.build_config("debug"), C.build_config("debug")
    assert a.hash() == b.hash() and len(a.hash()) == 64
    assert C.build_config("debug", steps=4).hash() != a.hash()
    assert C.build_config("debug", sets=["method.max_queries=64"]).hash() != a.hash()
    b.description = "changed"
    assert b.hash() == a.hash()


def test_missing_tomllib_is_a_clear_error(monkeypatch):
    monkeypatch.setattr(P, "tomllib", None)
    with pytest.raises(StillguardError, match="tomli"):
        C.load_preset("default")


def test_cuda_asked_for_but_missing(monkeypatch):
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(StillguardError, match="CUDA is not available.*--device cpu"):
        C.build_config("debug", device="cuda")
