"""Amortized protection: the protector network, the ``amortized`` method, training and the CLI."""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import pytest
import torch
from helpers import random_protector
from PIL import Image
from typer.testing import CliRunner

from stillguard import cli, protect, save_protected
from stillguard.errors import InputError
from stillguard.protector import Architecture, Protector, ProtectorNet, load_protector

runner = CliRunner()
SMALL = ["--width", "8", "--levels", "2", "--set", "method.unroll=2"]


@pytest.fixture(scope="module")
def pfile(tmp_path_factory) -> Path:
    """A random protector recording rollout-freeze (2-step unroll) against the tiny CogVideoX."""
    path = tmp_path_factory.mktemp("prot") / "p.safetensors"
    return random_protector(path, "rollout-freeze", method_options={"unroll": 2})


def _odd(h: int, w: int, seed: int = 0) -> torch.Tensor:
    return torch.rand(1, 3, h, w, generator=torch.Generator().manual_seed(seed))


def run(*args):
    return runner.invoke(cli.app, [str(a) for a in args], catch_exceptions=False)


@pytest.mark.parametrize("size", [(1, 5, 7), (2, 37, 53), (1, 64, 64), (1, 131, 90)])
@pytest.mark.parametrize("work", [(64, 64), None])
def test_protector_output_is_inside_the_budget_at_any_size(size, work) -> None:
    net = ProtectorNet(Architecture(width=8, levels=3))
    torch.nn.init.normal_(net.out[-1].weight, std=3.0)  # saturate tanh: the bound must still hold
    prot = Protector(net, 8 / 255, work)
    b, h, w = size
    x = torch.rand(b, 3, h, w)
    with torch.no_grad():
        d = prot.perturb(x)
    assert d.shape == x.shape
    assert float(d.abs().max()) <= 8 / 255 + 1e-7
    assert float(d.abs().max()) > 4 / 255  # it does perturb
    assert float(prot.perturb(x, 4 / 255).detach().abs().max()) <= 4 / 255 + 1e-7


def test_a_fresh_network_perturbs_nothing() -> None:
    assert torch.equal(
        Protector(ProtectorNet()).perturb(torch.rand(1, 3, 20, 30)), torch.zeros(1, 3, 20, 30)
    )


def test_the_saved_png_keeps_the_budget(tiny_cog, pfile, tmp_path) -> None:
    x = _odd(37, 53)
    p = protect(x, tiny_cog, "amortized", protector=str(pfile))
    assert p.losses == [] and p.config["steps"] == 0
    png = save_protected(p, tmp_path / "a.png")
    saved = np.asarray(Image.open(png)).astype(int)
    orig = np.round(x[0].permute(1, 2, 0).numpy() * 255).astype(int)
    diff = np.abs(saved - orig)
    assert diff.max() <= 8 and diff.max() >= 6  # the budget, and the network does use it
    side = json.loads(png.with_suffix(".json").read_text())
    net = side["config"]["method"]["network"]
    assert net["sha256"] == load_protector(pfile).sha256 and net["eps"] == pytest.approx(8 / 255)


def test_refine_starts_from_the_network_and_runs_the_recorded_method(tiny_cog, pfile) -> None:
    x = _odd(40, 48, seed=1)
    alone = protect(x, tiny_cog, "amortized", protector=str(pfile))
    tiny_step = protect(x, tiny_cog, "amortized", protector=str(pfile), refine=1,
                        step_size=1e-4, schedule="constant")  # fmt: skip
    assert len(tiny_step.losses) == 1
    assert float((tiny_step.image - alone.image).abs().max()) * 255 <= 1.001  # same start point
    refined = protect(x, tiny_cog, "amortized", protector=str(pfile), refine=3, seed=4)
    assert len(refined.losses) == 3 and set(refined.terms[0]) == {"motion"}
    assert refined.config["method"]["refine_method"] == {
        "name": "rollout-freeze",
        "target": "first",
        "unroll": 2,
    }
    assert not torch.equal(refined.image, alone.image)
    assert float(refined.delta.abs().max()) * 255 <= 8 + 1e-4


def test_without_a_target_model_only_the_file_is_needed(tiny_cog, pfile) -> None:
    x = _odd(33, 35)
    with_model = protect(x, tiny_cog, "amortized", protector=str(pfile))
    without = protect(x, None, "amortized", protector=str(pfile))
    assert torch.equal(with_model.image, without.image) and not without.real_model
    with pytest.raises(InputError, match="needs a protector file"):
        protect(x, None, "amortized")
    with pytest.raises(InputError, match="needs a target model"):
        protect(x, None, "amortized", protector=str(pfile), refine=2)
    with pytest.raises(InputError, match="no shipped protector for cogvideox-i2v:tiny"):
        protect(x, tiny_cog, "amortized")
    with pytest.raises(InputError, match="rgb space"):
        protect(x, tiny_cog, "amortized", protector=str(pfile), space="lab")


def test_bad_protector_files_are_one_clear_error(tmp_path, tiny_cog) -> None:
    from safetensors.torch import save_file

    x = _odd(32, 32)
    (tmp_path / "text.safetensors").write_text("not a tensor file")
    save_file({"a": torch.zeros(2)}, str(tmp_path / "foreign.safetensors"))
    net = ProtectorNet(Architecture(width=8, levels=2))
    wrong = Protector(net).metadata() | {
        "architecture": json.dumps({"width": 16, "levels": 2, "coords": True})
    }
    save_file({k: v.contiguous() for k, v in net.state_dict().items()},
              str(tmp_path / "shapes.safetensors"), metadata=wrong)  # fmt: skip
    cases = {"missing.safetensors": "no such file", "text.safetensors": "not a readable safetensors",
             "foreign.safetensors": "not a stillguard protector", "shapes.safetensors": "do not match"}  # fmt: skip
    for name, words in cases.items():
        with pytest.raises(InputError, match=words):
            protect(x, tiny_cog, "amortized", protector=str(tmp_path / name))


def test_the_cli_refuses_a_bad_protector_before_any_work(tmp_path) -> None:
    img = tmp_path / "in.png"
    Image.fromarray(np.zeros((32, 32, 3), np.uint8)).save(img)
    for extra in (["--protector", tmp_path / "nope.safetensors"], ["--method", "amortized"],
                  ["--method", "vid-freeze", "--refine", "2"], ["--refine", "-1"]):  # fmt: skip
        res = run("protect", img, "-o", tmp_path / "out", "--model", "tiny", *extra)
        lines = [
            ln for ln in res.stderr.splitlines() if ln.strip() and not ln.startswith("warning")
        ]
        assert res.exit_code == 2 and len(lines) == 1 and lines[0].startswith("error: "), res.output
        assert not (tmp_path / "out").exists()


def test_protect_routes_method_options_given_as_keywords(tiny_cog) -> None:
    x = _odd(32, 32)
    p = protect(x, tiny_cog, "rollout-freeze", unroll=2, steps=1)
    assert p.config["method"]["unroll"] == 2
    with pytest.raises(InputError, match="'unrol'"):
        protect(x, tiny_cog, "rollout-freeze", unrol=2, steps=1)


def _weights(path: Path) -> dict[str, torch.Tensor]:
    return dict(load_protector(path).net.state_dict())


def test_training_resumes_after_a_kill_where_it_stopped(tiny_cog, tmp_path) -> None:
    from stillguard.toy.training.protector import TrainSettings, train

    s = TrainSettings(steps=4, batch=2, width=8, levels=2, method_options={"unroll": 2},
                      validate_every=2, validation_size=2)  # fmt: skip
    whole = train(tiny_cog, s, tmp_path / "whole", checkpoint_minutes=0)

    def kill(ev) -> None:
        if ev.step == 3:
            raise KeyboardInterrupt  # after step 3's update, before its checkpoint

    with pytest.raises(KeyboardInterrupt):
        train(tiny_cog, s, tmp_path / "killed", callback=kill, checkpoint_minutes=0)
    assert not (tmp_path / "killed" / "protector.safetensors").exists()
    steps = []
    resumed = train(tiny_cog, s, tmp_path / "killed", callback=lambda e: steps.append(e.step),
                    checkpoint_minutes=0)  # fmt: skip
    assert steps == [3, 4]  # steps 1-2 came from the checkpoint
    a, b = (
        _weights(tmp_path / "whole" / "protector.safetensors"),
        _weights(tmp_path / "killed" / "protector.safetensors"),
    )
    for k in a:  # same draws and optimizer state: equal up to float rounding of the reload
        torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-6)
    assert resumed.training["resumed_at_steps"] == [2]
    assert whole.training["validation"].keys() == resumed.training["validation"].keys()
    other = TrainSettings(**{**s.to_dict(), "lr": 5e-4})
    with pytest.raises(InputError, match="other settings \\(lr\\)"):
        train(tiny_cog, other, tmp_path / "killed")


def test_an_ensemble_protector_records_its_members(tiny_adapter, tmp_path, caplog) -> None:
    from stillguard.toy.training.protector import TrainSettings, train

    pair = [tiny_adapter("cogvideox-i2v"), tiny_adapter("wan-i2v")]
    s = TrainSettings(steps=1, batch=1, width=8, levels=2, method_options={"unroll": 2},
                      validation_size=1)  # fmt: skip
    prot = train(pair, s, tmp_path)
    assert prot.training["targets"] == [{"target": "cogvideox-i2v", "model": "tiny"},
                                        {"target": "wan-i2v", "model": "tiny"}]  # fmt: skip
    assert {"cogvideox-i2v", "wan-i2v"} <= set(prot.training["validation"])
    with caplog.at_level(logging.WARNING, logger="stillguard.methods.amortized"):
        protect(
            _odd(32, 32), pair[0], "amortized", protector=str(tmp_path / "protector.safetensors")
        )
    assert "is a transfer" in caplog.text


def test_the_cli_trains_then_protects_with_the_file(tmp_path) -> None:
    res = run("train-protector", "-o", tmp_path / "run", "--model", "tiny", "--steps", "2",
              "--batch", "2", *SMALL, "--export", tmp_path / "p.safetensors", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    out = json.loads(res.stdout)
    assert out["protector"].endswith("p.safetensors") and out["steps"] == 2
    img = tmp_path / "in.png"
    Image.fromarray(np.full((30, 34, 3), 120, np.uint8)).save(img)
    res = run("protect", img, "-o", tmp_path / "o.png", "--model", "tiny",
              "--protector", tmp_path / "p.safetensors", "--refine", "1", "--json")  # fmt: skip
    assert res.exit_code == 0, res.output
    side = json.loads((tmp_path / "o.json").read_text())
    assert side["config"]["method"]["refine"] == 1 and side["config"]["steps"] == 1
    res = run("train-protector", "-o", tmp_path / "run2", "--model", "tiny", "--photos",
              tmp_path / "none", *SMALL)  # fmt: skip
    assert res.exit_code == 2 and "error: --photos" in res.stderr


def test_train_protector_plans_its_memory_first(tmp_path) -> None:
    res = run("train-protector", "-o", tmp_path / "run", "--model", "tiny", "--steps", "1",
              "--batch", "2", *SMALL, "--gpu-memory", "1KB")  # fmt: skip
    assert res.exit_code == 2 and not (tmp_path / "run").exists()
    line = res.stderr.strip().splitlines()[-1]
    assert line.startswith("error: one training step needs") and "--gpu-memory 1KB" in line


def test_the_step_plan_counts_the_protector_and_the_target() -> None:
    from stillguard.toy.training.protector_plan import plan_training, protector_bytes

    small, big = (protector_bytes(Architecture(8, 2), b, (64, 64)) for b in (1, 4))
    assert small["resident"] == big["resident"] > 0
    assert big["activations"] > 3 * small["activations"] > 0  # activations grow with the batch
    p = plan_training([("cogvideox-i2v", "tiny")], "rollout-freeze", {"unroll": 2},
                      Architecture(8, 2), 2, gpu_memory="64GiB")  # fmt: skip
    assert p["fits"] and p["photos_per_pass"] == 2
    assert (
        p["peak_bytes"]
        == p["members"][0]["peak_bytes"]
        + p["protector"]["resident"]
        + p["protector"]["activations"]
    )


def test_the_toy_targets_have_shipped_protectors(image) -> None:
    from stillguard import load_adapter
    from stillguard.protector import shipped_dir, shipped_for
    from stillguard.web.choices import offered

    pair = [("cogvideox-i2v", "toy"), ("wan-i2v", "toy-wan")]
    assert shipped_for(pair[:1]).name == "cogvideox-toy.safetensors"
    assert shipped_for(pair).name == "toy-pair.safetensors"
    held_out = {"chelsea.png", "cat.png", "coffee.png", "rocket.png", "camera.png"}
    for path in shipped_dir().glob("*.safetensors"):
        assert path.stat().st_size <= 20 * 2**20
        t = load_protector(path).training
        assert t["method"] == "rollout-freeze" and t["eps"] == pytest.approx(8 / 255)
        assert not held_out & set(t["data"]["folder"]["photos"])  # the benchmark's photos stay out
        assert t["data"]["synthetic"]["stream"] == 4  # the held-out scenes are stream 3
    p = protect(image, load_adapter("cogvideox-i2v", model="toy"), "amortized")
    assert p.config["method"]["network"]["protector"] == "shipped:cogvideox-toy.safetensors"
    assert 6 <= float(p.delta.abs().max()) * 255 <= 8 + 1e-4  # float32 subtraction of 8-bit levels
    assert "instant" in offered("cogvideox-i2v", "toy") and "instant" not in offered(
        "cogvideox-i2v", "tiny"
    )


def test_training_with_eot_and_a_folder_of_photos(tiny_cog, tmp_path) -> None:
    from stillguard.toy.training.protector import TrainSettings, train

    photos = tmp_path / "photos"
    photos.mkdir()
    for i in range(2):
        Image.fromarray(np.random.default_rng(i).integers(0, 256, (50, 70, 3), np.uint8)).save(
            photos / f"{i}.png"
        )
    s = TrainSettings(steps=2, batch=2, width=8, levels=2, method_options={"unroll": 2},
                      eot=("blur:1.0", "jpeg:75"), photos=str(photos), synthetic=0.5,
                      validation_size=2)  # fmt: skip
    prot = train(tiny_cog, s, tmp_path / "run")
    assert prot.training["eot"] == ["blur:1.0", "jpeg:75"]
    assert prot.training["data"]["folder"]["photos"] == ["0.png", "1.png"]
    assert float(prot.perturb(torch.rand(1, 3, 64, 64)).detach().abs().max()) > 0  # it learnt
