"""cosmos2-i2v specifics: the 1-frame encode against the pipeline's repeated clip, the EDM/flow
parameterisation, the pipeline's sampler, the guardrail choice, the torchvision stand-in, prompts,
real config (the contract itself: tests/test_adapters.py and friends)."""

from __future__ import annotations

import json
import logging

import pytest
import torch
from helpers import as_pil, denoise_seen, draw_inputs, save_tiny_text_encoder, smooth_photo8

from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters._shared.folders import PROMPT_FILE
from stillguard.errors import InputError, ModelError

NAME = "cosmos2-i2v"


def _tiny(**settings):
    a = ADAPTERS.get(NAME).tiny()
    if settings:
        a = type(a)(a.pipe, model_id="tiny", prompt_embeds=a.prompt_embeds,
                    negative_prompt_embeds=a.negative_prompt_embeds, device=a.device,
                    dtype=a.dtype, settings={**a.s.to_dict(), **settings})  # fmt: skip
    return a


def test_one_frame_encode_is_the_first_latent_of_the_repeated_clip(tiny_adapter):
    """The pipeline encodes the photo repeated over every frame; the causal Wan VAE makes the
    first latent frame depend on frame 0 only: the posterior (mean and std) of a 1-frame encode is
    the first frame's of the 9-frame one, and so is the normalised condition."""
    a = tiny_adapter(NAME)
    x = smooth_photo8(a)
    pix = (x * 2 - 1).unsqueeze(2)
    with torch.no_grad():
        one = a.pipe.vae.encode(pix).latent_dist
        clip = a.pipe.vae.encode(pix.repeat(1, 1, a.num_frames, 1, 1)).latent_dist
        pre = a.pipe.video_processor.preprocess(as_pil(x), a.height, a.width).unsqueeze(2)
        _, ref, ind, *_ = a.pipe.prepare_latents(pre, 1, 16, a.height, a.width, a.num_frames,
                                                 True, torch.float32, a.device,
                                                 torch.Generator().manual_seed(4))  # fmt: skip
        ours = a.encode(x, generator=torch.Generator().manual_seed(4))
        mode = _tiny(condition_sample="mode").encode(x)
    assert clip.mean.shape[2] == 3 and ind.flatten().tolist() == [1, 0, 0]
    torch.testing.assert_close(one.mean[:, :, 0], clip.mean[:, :, 0], rtol=0, atol=1e-6)
    torch.testing.assert_close(one.std[:, :, 0], clip.std[:, :, 0], rtol=0, atol=1e-6)
    # the pipeline's condition is a posterior sample drawn for the whole clip: same distribution
    mean = a._norm(one.mean[:, :, 0])
    torch.testing.assert_close(mode.image_latents[:, 0], mean, rtol=0, atol=1e-6)
    drawn = (ref[:, :, 0] - mean) / (a._norm(one.mean[:, :, 0] + one.std[:, :, 0]) - mean)
    assert drawn.abs().max() < 6 and 0.5 < float(drawn.std()) < 1.5  # a standard normal draw
    assert not torch.equal(ours.image_latents[:, 0], mode.image_latents[:, 0])


def test_keyed_posterior_draws_are_reproducible_and_fresh(tiny_adapter, image):
    a = tiny_adapter(NAME)
    t, noise = draw_inputs(a)
    with torch.no_grad():
        first, again = a.denoise(image, t, noise), a.denoise(image, t, noise)
        moved = a.denoise(image, t, torch.randn_like(noise))
    assert torch.equal(first.noisy, again.noisy)  # keyed by (image, noise)
    assert not torch.equal(first.noisy[:, 0], moved.noisy[:, 0])  # a new draw with new noise
    with pytest.raises(InputError, match="condition_sample"):
        _tiny(condition_sample="median")


def test_inputs_are_the_pipelines_and_x0_is_its_edm_formula(tiny_adapter, image):
    a = tiny_adapter(NAME)
    seen, t, noise, out = denoise_seen(a, image)
    tt = float(t) / 1000
    steps = seen["timestep"].flatten()
    assert steps[0] == pytest.approx(1e-4 / (1 + 1e-4)) and torch.allclose(steps[1:], t / 1000)
    assert (
        seen["condition_mask"][:, :, 0].eq(1).all() and seen["condition_mask"][:, :, 1:].eq(0).all()
    )
    assert seen["padding_mask"].shape == (1, 1, a.height, a.width) and seen["fps"] == 16
    assert torch.equal(out.target[:, 0], out.pred[:, 0])  # frame 0 is out of the loss
    # the pipeline's EDM form: x = z0 + σ·ε, input c_in·x, x0 = c_skip·x + c_out·pred
    sigma = tt / (1 - tt)
    x = out.z0 + sigma * noise
    torch.testing.assert_close(out.noisy[:, 1:], (1 - tt) * x[:, 1:])
    torch.testing.assert_close(out.x0[:, 1:], ((1 - tt) * x - tt * out.pred)[:, 1:])
    recovered = (1 - tt) * x - tt * out.target  # target = ε − z0 on the stepped frames
    torch.testing.assert_close(recovered[:, 1:], out.z0[:, 1:])


def test_rollout_equals_the_pipelines_sampler(monkeypatch, image):
    import diffusers.pipelines.cosmos.pipeline_cosmos2_video2world as mod

    orig = mod.retrieve_latents
    monkeypatch.setattr(
        mod, "retrieve_latents", lambda out, generator=None: orig(out, generator, "argmax")
    )
    a = _tiny(condition_sample="mode")
    x = smooth_photo8(a, 2)
    _, noise = draw_inputs(a, 5)
    with torch.no_grad():
        ref = a.pipe(
            image=as_pil(x), prompt_embeds=a.prompt_embeds, negative_prompt_embeds=a.negative_prompt_embeds,
            height=a.height, width=a.width, num_frames=a.num_frames, num_inference_steps=3,
            guidance_scale=a.s.guidance_scale, latents=noise.transpose(1, 2), output_type="latent",
        ).frames.transpose(1, 2)  # fmt: skip
    y = x.clone().requires_grad_(True)
    ours = a.rollout(y, noise, 3)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)
    ours[:, 1:].pow(2).mean().backward()
    assert y.grad is not None and y.grad.abs().sum() > 0


def test_the_guardrail_is_never_switched_off_silently(tiny_adapter, caplog):
    a = tiny_adapter(NAME)
    assert a.describe()["guardrail"] == "off"  # the tiny test model's setting
    with caplog.at_level(logging.WARNING):
        a.generate(smooth_photo8(a), seed=0, num_inference_steps=2)
    assert any("guardrail is OFF" in r.getMessage() for r in caplog.records)
    strict = _tiny(guardrail="cosmos")
    assert strict.describe()["guardrail"] == "cosmos"
    t, noise = draw_inputs(strict)
    with torch.no_grad():
        strict.denoise(smooth_photo8(a), t, noise)  # protecting needs no guardrail
    with pytest.raises(ModelError, match=r"cosmos_guardrail is not installed.*guardrail=off"):
        strict.generate(smooth_photo8(a), seed=0, num_inference_steps=2)


def _hub_layout(a, folder):
    """``a`` saved as the hub folder is laid out: ``model_index.json`` names the guardrail's
    package (no folder of its own), no ``stillguard.json``."""
    a.save_pretrained(str(folder))
    index = json.loads((folder / "model_index.json").read_text())
    assert index["safety_checker"] == [None, None]  # the stand-in is never saved
    index["safety_checker"] = ["cosmos_guardrail", "CosmosSafetyChecker"]
    (folder / "model_index.json").write_text(json.dumps(index))
    (folder / "stillguard.json").unlink()
    return folder


def test_the_hub_layout_loads_offline_and_runs_the_guardrail_by_default(
    tiny_adapter, tmp_path, monkeypatch
):
    """diffusers refuses a folder naming ``cosmos_guardrail`` unless it is installed; the adapter
    loads component by component, and the offline check does not ask for a guardrail folder."""
    import socket

    import huggingface_hub.constants as hc
    from helpers import hub_snapshot

    from stillguard.app.models import load_target

    def refuse(*_a, **_k):
        raise AssertionError("network access while loading a model")

    a = tiny_adapter(NAME)
    folder = _hub_layout(a, tmp_path / "m")
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(tmp_path / "cache"))
    monkeypatch.setattr(socket.socket, "connect", refuse)
    hub_snapshot(tmp_path / "cache", "someone/tiny-cosmos", folder)
    # a hub id's prompt comes from its T5 or the caller (the tiny folder has no T5)
    options = dict(height=32, width=64, num_frames=9, prompt_embeds=a.prompt_embeds)
    b = load_target(NAME, "someone/tiny-cosmos", "cpu", "float32", options)
    assert b.describe()["guardrail"] == "cosmos" and b.is_real
    assert b.model_id == "someone/tiny-cosmos"
    with pytest.raises(ModelError, match="cosmos_guardrail is not installed"):
        b.generate(smooth_photo8(b), seed=0, num_inference_steps=2)


def test_padding_stand_in_is_torchvisions_nearest_resize():
    import diffusers.models.transformers.transformer_cosmos as tc

    from stillguard.adapters.cosmos2 import padding

    padding.install()
    mask = (torch.rand(1, 1, 6, 10, generator=torch.Generator().manual_seed(0)) > 0.5).float()
    got = tc.transforms.functional.resize(
        mask, [3, 5], interpolation=tc.transforms.InterpolationMode.NEAREST
    )
    assert torch.equal(got, mask[:, :, ::2, ::2])  # nearest: every other pixel at half size
    sentinel = object()
    old, tc.transforms = tc.transforms, sentinel
    try:
        padding.install()
        assert tc.transforms is sentinel  # a real torchvision is left alone
    finally:
        tc.transforms = old


def test_prompt_is_embedded_once_with_t5_and_the_default_negative(tiny_adapter, tmp_path):
    from diffusers.pipelines.cosmos.pipeline_cosmos2_video2world import DEFAULT_NEGATIVE_PROMPT
    from transformers import T5Config, T5EncoderModel

    folder = tmp_path / "with-t5"
    tiny_adapter(NAME).save_pretrained(str(folder))
    (folder / PROMPT_FILE).unlink()
    with pytest.raises(ModelError, match="text encoder"):
        ADAPTERS.get(NAME).from_pretrained(str(folder))
    tok, t5 = save_tiny_text_encoder(folder, ["a", "cat", "runs"], T5EncoderModel, T5Config,
                                     register=True)  # fmt: skip
    a = ADAPTERS.get(NAME).from_pretrained(str(folder), prompt="a cat runs", text_tokens=4)
    assert a.pipe.text_encoder is None and a.pipe.tokenizer is None
    ids = tok(["a cat runs", DEFAULT_NEGATIVE_PROMPT], padding="max_length", max_length=4,
              truncation=True, return_tensors="pt")  # fmt: skip
    with torch.no_grad():
        expected = t5(ids.input_ids, attention_mask=ids.attention_mask).last_hidden_state
    expected = expected * ids.attention_mask[..., None]
    torch.testing.assert_close(a.prompt_embeds, expected[:1])
    torch.testing.assert_close(a.negative_prompt_embeds, expected[1:])
    with pytest.raises(InputError, match="unknown cosmos2-i2v option"):
        ADAPTERS.get(NAME).from_pretrained(str(folder), num_frame=5)
    with pytest.raises(InputError, match="no VAE tiling"):
        ADAPTERS.get(NAME).from_pretrained(str(folder), vae_tiling=True)


def test_real_config_on_meta_matches_published_figures():
    """Cosmos-Predict2-2B is published as a 2B model; the diffusers transformer counts 1.956e9 on
    the shipped config (docs/research/new-targets.md)."""
    cls = ADAPTERS.get(NAME)
    assert cls.default_model in cls.real_models
    a = cls.from_config(real_config(NAME), device="meta")
    n = sum(p.numel() for p in a.pipe.transformer.parameters())
    assert 1.9e9 < n < 2.0e9
    assert len(a.layer_names("attention")) == 28
    # 704x1280x93 -> 24 latent frames of 88x160 (Wan VAE 8x/4x), 24·44·80 = 84,480 tokens
    assert a.latent_shape(1) == (1, 24, 16, 88, 160)
    assert a.prompt_embeds.shape == (1, 512, 1024)
    assert (a.height, a.width, a.num_frames, a.num_inference_steps) == (704, 1280, 93, 35)
    assert a.s.guardrail == "cosmos" and a.s.condition_sample == "sample"
    sigmas = a.sampler_sigmas(35)
    assert float(sigmas[0]) == pytest.approx(80.0) and float(sigmas[-1]) == pytest.approx(0.002)
