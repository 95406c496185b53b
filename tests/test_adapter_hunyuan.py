"""hunyuan-i2v specifics: both image-conditioning types, joint-attention layout, LLaVA honesty, configs."""

from __future__ import annotations

import logging

import pytest
import torch
from helpers import draw_inputs

from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters._shared.folders import PROMPT_FILE
from stillguard.errors import CapabilityError, InputError, ModelError

NAME = "hunyuan-i2v"


@pytest.fixture(scope="module")
def token_replace():
    return ADAPTERS.get(NAME).tiny(image_condition_type="token_replace")


def test_encode_matches_the_pipeline(tiny_adapter, image):
    a = tiny_adapter(NAME)
    assert a.kind == "latent_concat" and a.num_frames == a.pipe_frames - 4
    pre = a.pipe.video_processor.preprocess(a.prepare(image), a.height, a.width)
    _, f, c, h, w = a.latent_shape(1)
    with torch.no_grad():
        _, ref = a.pipe.prepare_latents(pre, 1, c, a.height, a.width, a.pipe_frames,
                                        torch.float32, a.device, None, None, a.kind)  # fmt: skip
        ours = a.encode(image).image_latents
    torch.testing.assert_close(ours[:, 0], ref[:, :, 0], rtol=1e-5, atol=1e-6)
    assert (ours[:, 1:] == 0).all()  # the pipeline zeroes frames 1+ of the concatenated latent


def test_joint_maps_are_text_first_and_mask_padding(tiny_adapter, image):
    a = tiny_adapter(NAME)
    t, noise = draw_inputs(a)
    layers = a.layer_names("attention")
    assert layers[0].startswith("transformer_blocks") and layers[-1].startswith("single_")
    with torch.no_grad(), a.capture(attention=layers) as cap:
        a.denoise(image, t, noise)
    text = int(a.prompt["prompt_attention_mask"].numel())
    for layer in layers:
        probs, lay = cap.attention[layer][0], cap.layout[layer]
        assert lay["text"] == text and lay["frames"] == a.latent_shape(1)[1]
        # the tiny prompt's last two tokens are padding: no query may attend to them
        assert (probs[..., text - 2 : text] == 0).all()
        assert (probs[..., text:] > 0).all()


def test_rollout_equals_the_pipelines_sampler(tiny_adapter, image):
    a = tiny_adapter(NAME)
    _, noise = draw_inputs(a, 4)
    x = image.clone().requires_grad_(True)
    cond = a.encode(x)
    p = a.prompt
    img = a.prepare(image)
    with torch.no_grad():
        ref = a.pipe(image=img, latents=noise.transpose(1, 2), height=a.height, width=a.width,
                     num_frames=a.pipe_frames, num_inference_steps=2, output_type="latent",
                     prompt_embeds=p["prompt_embeds"], pooled_prompt_embeds=p["pooled_prompt_embeds"],
                     prompt_attention_mask=p["prompt_attention_mask"]).frames  # fmt: skip
    ours = a.rollout(cond, noise, 2)
    # latent concat: the pipeline returns latent frames 1+
    torch.testing.assert_close(ours[:, 1:].transpose(1, 2), ref, rtol=1e-4, atol=1e-5)
    ours.pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_token_replace_variant(token_replace, image):
    a = token_replace
    assert a.kind == "token_replace" and a.num_frames == a.pipe_frames
    assert a.pipe.transformer.config.guidance_embeds and a.guidance_scale == 6.0
    x = image.clone().requires_grad_(True)
    t, noise = draw_inputs(a)
    out = a.denoise(x, t, noise)
    cond = a.encode(image)
    torch.testing.assert_close(out.noisy[:, 0], cond.image_latents[:, 0])  # frame 0 = the photo
    assert torch.equal(out.target[:, 0], out.pred[:, 0].detach())
    torch.nn.functional.mse_loss(out.pred, out.target).backward()
    assert x.grad.abs().sum() > 0
    video = a.generate(image, seed=0, num_inference_steps=2)
    assert video.shape == (1, a.num_frames, 3, a.height, a.width)
    rolled = a.rollout(image, noise, 2)
    torch.testing.assert_close(rolled[:, 0], cond.image_latents[:, 0])


def test_llava_path_is_stated_and_refusable(tiny_adapter, tmp_path, caplog):
    a = tiny_adapter(NAME)
    assert "LLaVA" in a.describe()["text_image_path"]
    a.save_pretrained(str(tmp_path / "m"))
    cls = ADAPTERS.get(NAME)
    with caplog.at_level(logging.WARNING):
        b = cls.from_pretrained(str(tmp_path / "m"))
    assert b.is_real and "LLaVA" in caplog.text
    with pytest.raises(CapabilityError, match="LLaVA"):
        cls.from_pretrained(str(tmp_path / "m"), text_image_path="refuse")
    with pytest.raises(InputError, match="unknown hunyuan-i2v option"):
        cls.from_pretrained(str(tmp_path / "m"), guidance=2.0)
    (tmp_path / "m" / PROMPT_FILE).unlink()
    with pytest.raises(ModelError, match="LLaVA"):
        cls.from_pretrained(str(tmp_path / "m"))


@pytest.mark.parametrize(
    "model, kind, in_channels, frames, text",
    [
        ("hunyuanvideo-community/HunyuanVideo-I2V", "token_replace", 16, 129, 144 + 252),
        ("hunyuanvideo-community/HunyuanVideo-I2V-33ch", "latent_concat", 33, 125, 288 + 252),
    ],
)
def test_real_configs_on_meta_match_published_figures(model, kind, in_channels, frames, text):
    cls = ADAPTERS.get(NAME)
    a = cls.from_config(real_config(NAME, model), device="meta")
    tr = a.pipe.transformer
    n = sum(p.numel() for p in tr.parameters())
    # HunyuanVideo is published as a 13B model ("over 13 billion parameters", arXiv 2412.03603);
    # the diffusers transformer alone counts 12.8e9
    assert 12.5e9 < n < 13.5e9
    assert (len(tr.transformer_blocks), len(tr.single_transformer_blocks)) == (20, 40)
    assert a.kind == kind and tr.config.in_channels == in_channels
    # 720x1280x129 -> 33 latent frames of 45x80 patches (8x VAE, patch 2): 118,800 video tokens
    _, f, c, h, w = a.latent_shape(1)
    assert (f, c) == (33, 16) and f * (h // 2) * (w // 2) == 118_800
    assert a.num_frames == frames and a.prompt["prompt_embeds"].shape == (1, text, 4096)
    assert a.prompt["pooled_prompt_embeds"].shape == (1, 768)
    assert len(a.layer_names("attention")) == 60
