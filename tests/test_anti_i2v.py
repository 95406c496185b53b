"""Anti-I2V as its paper describes it: balanced terms, diagnostic, anchor, z0, reference, caption."""

from __future__ import annotations

import json
import logging
import math

import pytest
import torch

from stillguard import protect, save_protected
from stillguard.errors import CapabilityError, InputError, ModelError
from stillguard.methods import _reference
from stillguard.methods._balance import TermBalance
from stillguard.methods._target_image import target_image
from stillguard.plugins import METHODS

TERMS = ["irc", "ira_denoiser", "ira_vae", "diffusion"]


def test_combine_gives_the_weighted_gradient_and_equal_shares_at_the_first_call() -> None:
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    a, b = (x**2).sum(), 100 * (x * torch.linspace(0, 1, 192).view(1, 3, 8, 8)).sum()
    bal = TermBalance({"a": 1.0, "b": 2.0}, mode="grad-norm", balance_steps=2, every=0)
    loss, log = bal.combine({"a": a, "b": b}, x)
    (g,) = torch.autograd.grad(loss, x)
    ga, gb = 2 * x.detach(), 100 * torch.linspace(0, 1, 192).view(1, 3, 8, 8)
    wa, wb = 1 / float(ga.norm()), 2 / float(gb.norm())
    torch.testing.assert_close(g, wa * ga + wb * gb, rtol=1e-5, atol=1e-7)
    assert float(loss.detach()) == pytest.approx(
        wa * float(a.detach()) + wb * float(b.detach()), rel=1e-5
    )
    # balanced: each term's share is its multiplier's share (1 : 2)
    assert log["share.a"] == pytest.approx(1 / 3, abs=1e-6)
    assert log["share.b"] == pytest.approx(2 / 3, abs=1e-6)
    total = (wa * ga + wb * gb).sign()
    for k, gk in (("a", ga), ("b", gb)):
        both = (gk != 0) & (total != 0)
        assert log[f"agree.{k}"] == pytest.approx(float((gk.sign() == total)[both].float().mean()))
    # after balance_steps the weights stay fixed and plain calls log nothing
    bal.combine({"a": (x**2).sum(), "b": (3 * x).sum()}, x)
    w = bal.weights()
    loss, log = bal.combine({"a": (x**2).sum(), "b": (3 * x).sum()}, x)
    assert log == {} and bal.weights() == w


def test_the_parts_of_one_item_share_its_balance() -> None:
    x = torch.randn(16, requires_grad=True)
    terms = {"irc": (x**2).sum(), "den": (3 * x).sum(), "vae": x.sin().sum()}
    bal = TermBalance(dict.fromkeys(terms, 1.0), {"den": "ira", "vae": "ira"}, balance_steps=1)
    _, log = bal.combine(terms, x)
    assert log["share.irc"] == pytest.approx(0.5, abs=1e-6)  # two items: IRC and IRA
    assert log["share.den"] == pytest.approx(0.25, abs=1e-6)  # IRA's half, split in two
    assert bal.report()["groups"] == {"irc": "irc", "den": "ira", "vae": "ira"}


def test_no_balancing_keeps_the_multipliers() -> None:
    x = torch.randn(4, requires_grad=True)
    bal = TermBalance({"a": 0.5}, mode="none", balance_steps=5, every=2)
    assert not bal.diagnose_now()  # no balancing calls: the first diagnostic is at call 5
    loss, log = bal.combine({"a": (x**2).sum()}, x)
    assert log == {} and bal.weights() == {"a": 0.5}
    (g,) = torch.autograd.grad(loss, x)
    torch.testing.assert_close(g, x.detach())


@pytest.fixture(scope="module")
def run(tiny_cog):
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(3))
    opts = {"balance_steps": 2, "diagnose_every": 2}
    return protect(img, tiny_cog, "anti-i2v", steps=5, method_options=opts)


def test_every_term_steers_after_balancing(run) -> None:
    first = run.terms[0]
    shares = {"irc": 1 / 3, "ira_denoiser": 1 / 6, "ira_vae": 1 / 6, "diffusion": 1 / 3}
    for k in TERMS:
        assert first[f"share.{k}"] == pytest.approx(shares[k], abs=1e-4)
        assert 0.0 <= first[f"agree.{k}"] <= 1.0 and first[f"weight.{k}"] > 0
    assert "share.irc" in run.terms[2] and "share.irc" not in run.terms[3]  # 2 balancing, every 2
    rep = run.config["method_report"]
    assert rep["terms_run"] == TERMS and set(rep["terms"]) == set(TERMS)
    assert rep["diagnostic_calls"] == [0, 1, 2, 4] and rep["balance_steps"] == 2
    for k in TERMS:
        assert 0 < rep["terms"][k]["share"] < 1 and 0 <= rep["terms"][k]["agree"] <= 1
    assert set(rep["terms_skipped"]) == {"clip_cosine", "lpips"}
    assert "clip_model" in rep["terms_skipped"]["clip_cosine"]
    assert rep["reference"] == "generate" and rep["z0"] == "perturbed"


def test_the_sidecar_lists_the_terms_that_ran(run, tmp_path) -> None:
    side = json.loads(save_protected(run, tmp_path / "p.png").with_suffix(".json").read_text())
    rep = side["config"]["method_report"]
    assert rep["terms_run"] == TERMS and "lpips" in rep["terms_skipped"]
    assert all(math.isfinite(v["share"]) for v in rep["terms"].values())


def test_missing_aux_networks_are_said_at_the_start(tiny_cog, image, caplog) -> None:
    with caplog.at_level(logging.WARNING):
        protect(image, tiny_cog, "anti-i2v", steps=1, method_options={"reference": "static"})
    assert "auxiliary term clip_cosine skipped" in caplog.text
    assert "auxiliary term lpips skipped" in caplog.text


def test_the_auxiliary_term_runs_clip_and_lpips_from_local_folders(tmp_path, tiny_cog) -> None:
    from stillguard.encoders import ClipImage, Lpips

    ClipImage.tiny().save(tmp_path / "clip")
    Lpips.tiny().save(tmp_path / "lpips")
    img = torch.rand(1, 3, 64, 64, generator=torch.Generator().manual_seed(4))
    opts = {"clip_model": str(tmp_path / "clip"), "lpips_model": str(tmp_path / "lpips"),
            "reference": "static", "balance_steps": 1}  # fmt: skip
    p = protect(img, tiny_cog, "anti-i2v", steps=2, method_options=opts)
    rep = p.config["method_report"]
    assert rep["terms_run"] == [*TERMS[:3], "clip_cosine", "lpips", "diffusion"]
    assert rep["terms_skipped"] == {}
    assert -1 <= p.terms[0]["clip_cosine"] <= 1 and p.terms[0]["lpips"] > 0  # random start
    assert p.terms[0]["share.lpips"] == pytest.approx(1 / 8, abs=1e-4)  # half of aux's quarter


def test_a_bad_aux_folder_is_one_clear_error(tmp_path, tiny_cog, image) -> None:
    m = METHODS.build("anti-i2v", lpips_model=str(tmp_path), reference="static")
    with pytest.raises(ModelError, match="no .safetensors"):
        m.setup(tiny_cog, image, torch.Generator().manual_seed(0))


def test_the_default_anchor_is_the_bundled_natural_photo(image) -> None:
    assert METHODS.build("anti-i2v").target == "anchor"
    a = target_image("anchor", image)
    assert a.shape == image.shape and 0 <= float(a.min()) and float(a.max()) <= 1
    assert float(a[:, 0].mean()) > float(a[:, 2].mean()) + 0.1  # a reddish fundus photo
    torch.testing.assert_close(a, target_image("anchor", image))


@pytest.mark.parametrize("opts", [{"z0": "latent"}, {"reference": "video"}, {"balance": "equal"},
                                  {"balance_steps": 0}, {"diagnose_every": -1}])  # fmt: skip
def test_bad_options_are_refused(opts) -> None:
    with pytest.raises(InputError):
        METHODS.build("anti-i2v", **opts)


def _diffusion_grad(adapter, x, z0: str) -> torch.Tensor:
    m = METHODS.build("anti-i2v", z0=z0, irc_weight=0, ira_weight=0, aux_weight=0,
                      reference="static", balance="none")  # fmt: skip
    state = m.setup(adapter, x, torch.Generator().manual_seed(0))
    leaf = x.clone().requires_grad_(True)
    loss, terms = m.loss(adapter, leaf, torch.Generator().manual_seed(5), state)
    assert set(terms) == {"diffusion"}
    return torch.autograd.grad(loss, leaf)[0]


def test_z0_perturbed_differentiates_through_the_clean_latent(tiny_cog, image) -> None:
    x = torch.round(image * 255) / 255 + 0.01 * torch.randn_like(image).clamp(-1, 1)
    g_pert, g_clean = (
        _diffusion_grad(tiny_cog, x, "perturbed"),
        _diffusion_grad(tiny_cog, x, "clean"),
    )
    cos = torch.nn.functional.cosine_similarity(g_pert.flatten(), g_clean.flatten(), dim=0)
    assert float(g_pert.abs().sum()) > 0 and float(g_clean.abs().sum()) > 0
    assert float(cos) < 0.999  # the z0 path adds its own gradient


def test_the_reference_video_is_generated_once_per_photo_and_seed(tiny_cog, image, tmp_path,
                                                                  monkeypatch) -> None:  # fmt: skip
    _reference.clear_memory()
    calls = []
    real = tiny_cog.generate
    monkeypatch.setattr(tiny_cog, "generate", lambda *a, **k: calls.append(k) or real(*a, **k))
    m = METHODS.build("anti-i2v", reference_cache=str(tmp_path))
    g = torch.Generator().manual_seed(0)
    s1 = m.setup(tiny_cog, image, g)
    s2 = m.setup(tiny_cog, image, g)
    assert len(calls) == 1 and torch.equal(s1.z_ref, s2.z_ref)
    assert s1.z_ref.shape == tuple(tiny_cog.latent_shape(1))
    static = METHODS.build("anti-i2v", reference="static").setup(tiny_cog, image, g).z_ref
    assert not torch.allclose(static, s1.z_ref)  # a generated video, not the frozen photo
    _reference.clear_memory()  # a new process: the cache folder serves it
    assert torch.equal(m.setup(tiny_cog, image, g).z_ref, s1.z_ref) and len(calls) == 1
    assert len(list(tmp_path.glob("reference-*.safetensors"))) == 1
    other = METHODS.build("anti-i2v", reference_seed=1).setup(tiny_cog, image, g).z_ref
    assert len(calls) == 2 and not torch.allclose(other, s1.z_ref)


def test_a_caption_on_a_target_without_text_encoder_is_one_clear_error(tiny_cog, image) -> None:
    m = METHODS.build("anti-i2v", caption="a photo of a cat", reference="static")
    with pytest.raises((CapabilityError, ModelError), match="cannot embed a caption"):
        m.setup(tiny_cog, image, torch.Generator().manual_seed(0))


def _word_tokenizer(words: list[str], **special: str):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.WordLevel({w: i for i, w in enumerate(words)}, unk_token=words[2]))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, **special)


@pytest.fixture(scope="module")
def cog_with_t5(tmp_path_factory):
    """A tiny CogVideoX folder with a tiny random T5 and a word-level tokenizer."""
    from transformers import T5Config, T5EncoderModel

    from stillguard.plugins import ADAPTERS

    folder = tmp_path_factory.mktemp("cog-t5")
    cls = ADAPTERS.get("cogvideox-i2v")
    cls.tiny(0).save_pretrained(str(folder))
    words = ["<pad>", "</s>", "<unk>", "a", "photo", "of", "cat", "blue", "red"]
    _word_tokenizer(words, pad_token="<pad>", eos_token="</s>", unk_token="<unk>").save_pretrained(
        folder / "tokenizer"
    )
    torch.manual_seed(0)
    t5 = T5EncoderModel(T5Config(vocab_size=len(words), d_model=16, d_kv=8, d_ff=32,
                                 num_layers=1, num_heads=2))  # fmt: skip
    t5.save_pretrained(folder / "text_encoder", safe_serialization=True)
    index = json.loads((folder / "model_index.json").read_text())
    index["text_encoder"] = ["transformers", "T5EncoderModel"]
    index["tokenizer"] = ["transformers", "PreTrainedTokenizerFast"]
    (folder / "model_index.json").write_text(json.dumps(index))
    return cls.from_pretrained(str(folder))


def test_a_caption_conditions_the_target_during_the_attack(cog_with_t5, image) -> None:
    a = cog_with_t5
    own = a.prompt_embeds.clone()
    m = METHODS.build("anti-i2v", caption="a photo of a cat", reference="static")
    state = m.setup(a, image, torch.Generator().manual_seed(0))
    emb = state.text["prompt_embeds"]
    assert emb.shape == own.shape and not torch.allclose(emb, own)
    torch.testing.assert_close(a.prompt_embeds, own)  # restored after setup
    seen = []
    real = a.pipe.transformer.forward
    a.pipe.transformer.forward = lambda *x, **k: (
        seen.append(k["encoder_hidden_states"]) or real(*x, **k)
    )
    try:
        m.loss(a, image.clone().requires_grad_(True), torch.Generator().manual_seed(1), state)
    finally:
        del a.pipe.transformer.forward
    assert seen and all(torch.equal(e, emb) for e in seen)
    torch.testing.assert_close(a.prompt_embeds, own)
    assert m.report(state)["caption"] == "a photo of a cat"


def test_embed_text_is_the_folders_t5_on_the_padded_caption(cog_with_t5) -> None:
    """``embed_text`` reloads the folder's T5 and tokenizer, pads to the transformer's text length
    as CogVideoX's pipeline does, drops T5 again and caches per text. Same weights, same CPU
    kernels; the tolerance only allows for a different reduction order."""
    from transformers import AutoTokenizer, T5EncoderModel

    a = cog_with_t5
    got = a.embed_text("a red cat")["prompt_embeds"]
    n = a.pipe.transformer.config.max_text_seq_length
    tok = AutoTokenizer.from_pretrained(a.text_source, subfolder="tokenizer")
    ids = tok("a red cat", padding="max_length", max_length=n, truncation=True,
              add_special_tokens=True, return_tensors="pt").input_ids  # fmt: skip
    t5 = T5EncoderModel.from_pretrained(a.text_source, subfolder="text_encoder")
    with torch.no_grad():
        want = t5(ids)[0].to(got.dtype)
    assert got.shape == (1, n, t5.config.d_model)
    torch.testing.assert_close(got, want, rtol=1e-5, atol=1e-6)
    assert a.pipe.text_encoder is None and a.pipe.tokenizer is None  # dropped after use
    assert a.embed_text("a red cat")["prompt_embeds"] is got  # cached per text
    assert not torch.allclose(a.embed_text("a blue cat")["prompt_embeds"], got)


def test_a_local_captioner_writes_the_caption(tmp_path, cog_with_t5, image) -> None:
    from transformers import BlipConfig, BlipForConditionalGeneration, BlipProcessor
    from transformers.models.blip import BlipImageProcessorPil

    words = ["[PAD]", "[DEC]", "[UNK]", "[SEP]", "a", "photo", "of", "cat", "blue", "red"]
    tok = _word_tokenizer(words, pad_token="[PAD]", unk_token="[UNK]", sep_token="[SEP]",
                          bos_token="[DEC]")  # fmt: skip
    BlipProcessor(BlipImageProcessorPil(size={"height": 32, "width": 32}), tok).save_pretrained(
        tmp_path
    )
    torch.manual_seed(0)
    text = dict(vocab_size=len(words), hidden_size=16, num_hidden_layers=1, num_attention_heads=2,
                intermediate_size=32, bos_token_id=1, pad_token_id=0, sep_token_id=3,
                max_position_embeddings=64, encoder_hidden_size=16)  # fmt: skip
    vision = dict(hidden_size=16, num_hidden_layers=1, num_attention_heads=2, intermediate_size=32,
                  image_size=32, patch_size=16)  # fmt: skip
    model = BlipForConditionalGeneration(BlipConfig(text_config=text, vision_config=vision))
    model.save_pretrained(tmp_path, safe_serialization=True)
    m = METHODS.build("anti-i2v", captioner=str(tmp_path), reference="static")
    state = m.setup(cog_with_t5, image, torch.Generator().manual_seed(0))
    assert isinstance(state.caption, str) and state.caption  # random weights: random words
    assert set(state.caption.split()) <= set(words[4:])
    assert state.text is not None


def test_a_broken_captioner_folder_is_one_clear_error(tmp_path, tiny_cog, image) -> None:
    m = METHODS.build("anti-i2v", captioner=str(tmp_path), reference="static")
    with pytest.raises(ModelError, match="cannot load a captioner"):
        m.setup(tiny_cog, image, torch.Generator().manual_seed(0))


def test_a_term_without_gradient_gets_weight_zero_not_an_unbounded_one(caplog) -> None:
    """On a model where a term is constant in the image (IRC when every block is the identity, as
    zero-initialised modulation makes it) balancing must not divide by its zero gradient norm."""
    x = torch.randn(1, 3, 8, 8, requires_grad=True)
    bal = TermBalance({"flat": 1.0, "live": 1.0}, mode="grad-norm", balance_steps=2, every=1)
    with caplog.at_level(logging.WARNING, logger="stillguard.methods._balance"):
        for _ in range(4):
            flat = (x * 0).sum() + 3.0  # depends on x, gradient exactly 0
            loss, log = bal.combine({"flat": flat, "live": (x**2).sum()}, x)
            assert all(math.isfinite(v) for v in log.values()) and "agree.flat" not in log
            assert math.isfinite(float(loss))
    assert bal.weight("flat") == 0.0 and 0 < bal.weight("live") < 1
    assert "flat had no image gradient" in caplog.text
    assert bal.report()["terms"]["flat"]["agree"] is None
