"""`protect --gpu-memory`: the planner picks memory-ladder rungs and the run records them."""

from __future__ import annotations

import json

import pytest
from helpers import rand_image
from PIL import Image
from typer.testing import CliRunner

from stillguard.app.config import build_config
from stillguard.app.fit import fit_config
from stillguard.cli import app
from stillguard.errors import InputError


def test_a_run_that_fits_keeps_its_settings_and_records_no_rung() -> None:
    cfg = build_config("debug", model="tiny", steps=2)
    fitted, plan = fit_config(cfg, "80GB")
    assert plan.fits and fitted.rungs == [] and fitted.method_options == cfg.method_options
    assert fitted.to_dict()["target"]["rungs"] == []


def test_a_batch_must_fit_as_a_whole() -> None:
    cfg = build_config("debug", model="tiny", steps=2)
    _, one = fit_config(cfg, "80GB")
    _, four = fit_config(cfg, "80GB", batch_size=4)
    assert four.batch_size == 4 and four.peak_bytes > one.peak_bytes
    sampled = build_config("debug", model="tiny", steps=2, method="vid-freeze",
                           sets=["method.attention_mode=sampled"])  # fmt: skip
    _, alone = fit_config(sampled, "80GB", batch_size=4)
    assert alone.batch_size == 1  # it will run one image at a time, so it is planned that way


def test_an_ensemble_is_refused() -> None:
    cfg = build_config("debug", target="cogvideox-i2v,svd", model="tiny")
    with pytest.raises(InputError, match="one target"):
        fit_config(cfg, "24GiB")


def test_cli_records_the_plan_in_the_sidecar(tmp_path) -> None:
    src = tmp_path / "a.png"
    Image.fromarray(rand_image(40, 48)).save(src)
    out = tmp_path / "a.protected.png"
    args = ["protect", str(src), "-o", str(out), "--preset", "debug", "--steps", "1"]
    res = CliRunner().invoke(app, [*args, "--model", "tiny", "--gpu-memory", "80GB"])
    assert res.exit_code == 0, res.output
    assert "planned for 80GB: rungs none" in res.stderr
    side = json.loads(out.with_suffix(".json").read_text())
    assert side["run_config"]["target"]["rungs"] == []
    bad = CliRunner().invoke(app, [*args, "--model", "tiny", "--gpu-memory", "lots"])
    assert bad.exit_code == 2 and "cannot read the memory size" in bad.stderr


def test_cli_plans_the_whole_batch(tmp_path, monkeypatch) -> None:
    import stillguard.app.fit as fit

    seen = []
    real = fit.fit_config

    def spy(cfg, gpu_memory, **kw):
        seen.append(kw.get("batch_size"))
        return real(cfg, gpu_memory, **kw)

    monkeypatch.setattr(fit, "fit_config", spy)
    Image.fromarray(rand_image(40, 48)).save(tmp_path / "a.png")
    args = ["protect", str(tmp_path / "a.png"), "-o", str(tmp_path / "out"), "--preset", "debug"]
    res = CliRunner().invoke(app, [*args, "--steps", "1", "--model", "tiny", "--gpu-memory",
                                   "80GB", "--batch-size", "3"])  # fmt: skip
    assert res.exit_code == 0, res.output
    assert seen == [3]


@pytest.mark.slow
def test_real_cogvideox_on_24gib_gets_rungs_the_planner_says_fit() -> None:
    """The published CogVideoX-5b-I2V configuration, planned on fake tensors (no weights)."""
    from stillguard.plan import LADDER
    from stillguard.plan import rungs as R

    cfg = build_config("default", model="THUDM/CogVideoX-5b-I2V", steps=1)
    fitted, plan = fit_config(cfg, "24GiB")
    assert plan.fits and plan.need_bytes <= 24 * 2**30 and fitted.rungs == plan.rungs
    order = [R.parse(r)[0] for r in fitted.rungs]
    assert order == sorted(order, key=LADDER.index)  # climbed in the documented order
    assert fitted.rungs[0] == "bf16" and fitted.dtype == "bf16"
    assert fitted.target_options.get("gradient_checkpointing") is True
