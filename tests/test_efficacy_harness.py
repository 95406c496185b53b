"""Smoke test of ``benchmarks/efficacy.py`` on the tiny random model (fast, offline).

The harness is a script, not a package module, so it is loaded from its file. The run uses the
quick settings (2 held-out images, 1 seed) with a single PGD step so it stays within seconds.
"""

from __future__ import annotations

import importlib.util
import json
import math
from pathlib import Path

import pytest

#: runs the real benchmark harness end to end (minutes): in the slow suite
pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def efficacy():
    spec = importlib.util.spec_from_file_location("efficacy", ROOT / "benchmarks" / "efficacy.py")
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


@pytest.fixture(scope="module")
def quick_run(efficacy, tmp_path_factory):
    out = tmp_path_factory.mktemp("docs")
    work = tmp_path_factory.mktemp("work")
    argv = ["--model", "tiny", "--quick", "--steps", "1", "--only", "vid-freeze,noise"]
    argv += ["--out", str(out), "--work", str(work)]
    doc = efficacy.main(argv)
    return doc, out, work


def test_held_out_images_are_64px_and_mixed(efficacy):
    imgs = efficacy.held_out_images()
    assert len(imgs) == 8
    names = [n for n, _, _ in imgs]
    assert "astronaut" not in names
    assert sum(n.startswith("synthetic") for n in names) == 4
    assert names[:2] == ["chelsea", "synthetic-0"]  # a quick prefix has one of each kind
    for _, _, img in imgs:
        assert img.shape == (1, 3, 64, 64)
        assert 0 <= float(img.min()) and float(img.max()) <= 1
        assert img.std() > 0.02  # a real picture, not a flat fill


def test_quick_run_writes_markdown_and_json(quick_run, efficacy):
    doc, out, work = quick_run
    md = (out / "efficacy.md").read_text()
    data = json.loads((out / "efficacy.json").read_text())
    cols = ("motion ratio", "median motion ratio", "dissim ratio", "SSIM to clean video", "PSNR dB")
    for col in (*cols, "frame-0 SSIM"):
        assert col in md
    assert "same-budget noise (evaluate baseline)" in md
    assert "not run: no second model" in md
    assert "--model tiny --quick" in md  # the exact command is recorded
    assert set(data) == {"sections", "results", "goals"}
    head = data["sections"]["headline"]
    assert head["labels"] == ["vid-freeze", "noise"]
    for key in head["keys"]:
        res = data["results"][key]
        assert [r["image"] for r in res["images"]] == ["chelsea", "synthetic-0"]
        for rec in res["images"]:
            assert rec["linf_255"] <= 8  # the budget holds on the saved PNG
            assert {r["transform"] for r in rec["rows"]} == set(efficacy.TRANSFORMS)
            assert len(rec["rows"]) == len(efficacy.TRANSFORMS)  # one seed in quick mode
        ident = res["aggregate"]["protected"]["identity"]["motion_ratio"]
        assert ident["n"] == 2 and math.isfinite(ident["mean"]) and ident["mean"] > 0
    assert len(list(work.glob("*.png"))) == 4  # 2 methods x 2 images, saved and evaluated
    status = {g["goal"]: g["status"] for g in data["goals"]}
    for g in data["goals"]:  # each status follows from what was measured
        if g["status"] == "NOT RUN":
            assert g["measured"] == "not run"
        else:
            assert g["status"] in ("PASS", "FAIL") and g["measured"] != "not run"
    assert status["vid-freeze 4/255, identity: motion and dissim ratio <= 0.10"] == "NOT RUN"
    assert all(f"**{s}**" in md for s in status.values())


def test_merge_keeps_earlier_sections(quick_run, efficacy):
    doc, out, work = quick_run
    argv = ["--model", "tiny", "--quick", "--no-headline", "--merge", "--out", str(out)]
    merged = efficacy.main(argv + ["--work", str(work)])
    assert merged["sections"]["headline"]["keys"] == doc["sections"]["headline"]["keys"]
    assert "Headline" in (out / "efficacy.md").read_text()


def _merge_side_run(efficacy, out, work, side, tmp_path):
    """Copy the quick run's JSON to a fresh folder and fold ``side``'s sections into it."""
    merged_out = tmp_path / "merged"
    merged_out.mkdir()
    (merged_out / "efficacy.json").write_text((out / "efficacy.json").read_text())
    argv = ["--model", "tiny", "--quick", "--no-headline", "--merge", "--work", str(work)]
    side_json = str(side / "efficacy.json")
    return efficacy.main([*argv, "--out", str(merged_out), "--merge-from", side_json]), merged_out


def test_rollout_freeze_ablation_merges_from_a_side_run(quick_run, efficacy, tmp_path):
    doc, out, work = quick_run
    side = tmp_path / "side"
    argv = ["--model", "tiny", "--quick", "--steps", "1", "--images", "1", "--no-headline"]
    argv += ["--ablation", "unroll", "--ablation-method", "rollout-freeze", "--work", str(work)]
    efficacy.main([*argv, "--out", str(side)])
    merged, merged_out = _merge_side_run(efficacy, out, work, side, tmp_path)
    sec = merged["sections"]["ablation-unroll-rollout-freeze"]
    assert sec["labels"] == ["unroll 0", "unroll 5", "unroll 2"]
    assert [merged["results"][k]["variant"]["method"] for k in sec["keys"]] == [
        "rollout-freeze"
    ] * 3
    assert merged["sections"]["headline"]["keys"] == doc["sections"]["headline"]["keys"]
    assert "Ablation (rollout-freeze): unroll" in (merged_out / "efficacy.md").read_text()


def test_a_named_section_sits_beside_the_headline(quick_run, efficacy, tmp_path):
    doc, out, work = quick_run
    argv = ["--model", "tiny", "--quick", "--steps", "1", "--images", "1", "--work", str(work)]
    side = tmp_path / "side"
    efficacy.main(
        [*argv, "--out", str(side), "--only", "rollout-collapse", "--section", "collapse"]
    )
    merged, _ = _merge_side_run(efficacy, out, work, side, tmp_path)
    assert merged["sections"]["collapse"]["labels"] == ["rollout-collapse"]
    assert merged["sections"]["headline"]["labels"] == ["vid-freeze", "noise"]
    goal = "rollout-collapse 8/255, identity: fidelity to input and to clean video halved"
    record = next(g for g in merged["goals"] if g["goal"] == goal)
    # measured (on the tiny model), not "NOT RUN", and the verdict follows the measured numbers
    drop, ssim = (float(part.rsplit(" ", 1)[1]) for part in record["measured"].split(", "))
    assert record["status"] == ("PASS" if drop >= 0.5 and ssim <= 0.5 else "FAIL")


def test_attention_ablations_refuse_rollout_freeze(efficacy):
    with pytest.raises(SystemExit, match="vid-freeze"):
        efficacy.ablation_variants("layers", 10, ["a"], "rollout-freeze")


def _fake_doc(efficacy, motion: float, dissim: float, noise_motion: float) -> dict:
    def agg(m: float, d: float) -> dict:
        stat = {k: {"mean": 0.9, "std": 0.0, "n": 1} for k in efficacy.METRICS}
        stat = {**stat, "motion_ratio": {"mean": m, "std": 0.0, "n": 1}}
        stat["dissim_ratio"] = {"mean": d, "std": 0.0, "n": 1}
        return {t: dict(stat) for t in efficacy.TRANSFORMS}

    v = efficacy.variant("vid-freeze", "vid-freeze", steps=3)
    res = {
        "variant": v,
        "context": {},
        "aggregate": {"protected": agg(motion, dissim), "noise": agg(noise_motion, 1.0)},
    }
    run = {"steps": 3}
    return {"sections": {"headline": {"keys": ["k"], "run": run}}, "results": {"k": res}}


def test_goals_pass_and_fail_on_thresholds(efficacy):
    good = {g["goal"]: g["status"] for g in efficacy.goals(_fake_doc(efficacy, 0.05, 0.08, 0.95))}
    bad = {g["goal"]: g["status"] for g in efficacy.goals(_fake_doc(efficacy, 0.05, 0.2, 0.5))}
    vf8 = "vid-freeze 8/255, identity: motion and dissim ratio <= 0.10"
    noise = "same-budget noise baseline 8/255, identity: motion ratio >= 0.80"
    assert good[vf8] == "PASS" and bad[vf8] == "FAIL"
    assert good[noise] == "PASS" and bad[noise] == "FAIL"
    assert good["vid-freeze 8/255 after jpeg:75: motion ratio <= 0.30"] == "PASS"
    assert good["anti-i2v 8/255, identity: fidelity to input and to clean video halved"] == (
        "NOT RUN"
    )


def test_goals_skip_superseded_rows(efficacy):
    doc = _fake_doc(efficacy, 0.05, 0.08, 0.95)  # an old vid-freeze row that passes
    newer = _fake_doc(efficacy, 0.9, 0.9, 0.95)
    doc["results"]["new"] = newer["results"]["k"]
    doc["sections"]["seed-methods"] = {"keys": ["new"], "run": {"steps": 3}}
    vf8 = "vid-freeze 8/255, identity: motion and dissim ratio <= 0.10"
    assert {g["goal"]: g["status"] for g in efficacy.goals(doc)}[vf8] == "PASS"  # the first found
    doc["sections"]["headline"]["superseded"] = {"vid-freeze": "seed-methods"}
    record = next(g for g in efficacy.goals(doc) if g["goal"] == vf8)
    assert record["status"] == "FAIL" and "0.900" in record["measured"]  # the newer section's


def test_ablation_variants_restate_defaults_as_the_headline(efficacy):
    layers = ["a", "b", "c", "d"]
    head = efficacy.variant("vid-freeze", "vid-freeze", steps=100)
    ctx = {"model": "m"}
    for name in ("layers", "attention", "unroll", "spaces", "eot", "eps", "steps"):
        keys = [efficacy.vkey(v, ctx) for v in efficacy.ablation_variants(name, 100, layers)]
        assert len(set(keys)) == len(keys)  # every row is a different setting
        assert efficacy.vkey(head, ctx) in keys, name  # and one of them is the headline run
    half = efficacy.ablation_variants("layers", 100, layers)
    assert [v["options"].get("layers") for v in half] == [None, "first:2", "last:2"]
    assert [v["steps"] for v in efficacy.ablation_variants("steps", 8, layers)] == [2, 4, 8, 16]


# --------------------------------------------------------------- benchmarks/latent_bound.py
@pytest.fixture(scope="module")
def latent_bound():
    spec = importlib.util.spec_from_file_location(
        "latent_bound", ROOT / "benchmarks" / "latent_bound.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def test_condition_on_latent_matches_encode(tiny_cog, image):
    import torch

    with torch.no_grad():
        cond = tiny_cog.encode(image)
        again = tiny_cog.condition_on_latent(cond.first_latent)
        video = tiny_cog.decode(tiny_cog.rollout(cond, torch.randn(tiny_cog.latent_shape(1)), 2))
    assert torch.equal(again.image_latents, cond.image_latents)
    assert video.shape == (1, tiny_cog.num_frames, 3, tiny_cog.height, tiny_cog.width)
    assert 0 <= float(video.min()) and float(video.max()) <= 1


@pytest.mark.parametrize("objective", ["freeze", "collapse"])
def test_latent_bound_stays_in_the_ball(latent_bound, objective, tmp_path):
    argv = ["--model", "tiny", "--images", "1", "--steps", "3", "--eps", "2,inf", "--seeds", "1"]
    doc = latent_bound.main([*argv, "--objective", objective, "--out", str(tmp_path)])
    small, free = doc["rows"]
    assert 0 < small["reach"] and small["moved"] <= small["reach"] * 1.001
    assert free["reach"] is None and free["moved"] > 0
    stem = "latent-bound" if objective == "freeze" else "latent-bound-collapse"
    assert json.loads((tmp_path / f"{stem}.json").read_text())["objective"] == objective
    assert "| 2.0 |" in (tmp_path / f"{stem}.md").read_text()


def test_attention_effect_measures_all_subjects(tmp_path):
    spec = importlib.util.spec_from_file_location(
        "attention_effect", ROOT / "benchmarks" / "attention_effect.py"
    )
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    argv = [
        "--model",
        "tiny",
        "--images",
        "1",
        "--steps",
        "2",
        "--draws",
        "2",
        "--out",
        str(tmp_path),
    ]
    doc = mod.main(argv)
    assert [r["subject"] for r in doc["rows"]] == ["vid-freeze", "rollout-freeze", "noise"]
    for r in doc["rows"]:
        assert math.isfinite(r["excess_ratio"]) and r["excess_ratio"] > 0
        assert math.isfinite(r["motion_ratio"]) and r["motion_ratio"] > 0
    assert "| chelsea | noise |" in (tmp_path / "attention-effect.md").read_text()


def test_terms_table_averages_the_diagnostic_over_images(efficacy):
    recs = [
        {"terms": {"irc": {"share": 0.2, "agree": 0.6}, "diffusion": {"share": 0.8, "agree": 0.9}},
         "terms_skipped": {"lpips": "no folder"}},
        {"terms": {"irc": {"share": 0.4, "agree": 0.7}, "diffusion": {"share": 0.6, "agree": None}}},
    ]  # fmt: skip
    lines = efficacy._terms_md(["anti-i2v"], [{"images": recs}])
    assert "| anti-i2v | irc | 0.300 | 0.650 | 0.60 | 2 |" in lines
    assert "| anti-i2v | diffusion | 0.700 | 0.900 | 0.90 | 2 |" in lines  # None: no agreement
    assert any("`lpips` did not run (no folder)" in line for line in lines)
    assert efficacy._terms_md(["vid-freeze"], [{"images": [{"rows": []}]}]) == []
