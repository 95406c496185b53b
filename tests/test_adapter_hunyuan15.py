"""hunyuan15-i2v specifics: both photo roads against the pipeline's own numbers, the sampler, the
recorded joint maps against the model's attention, the sizing forward, the size buckets, the
batchable VAE, the prompt rules and the real configuration on the meta device."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from helpers import check_capture_under_checkpointing, draw_inputs
from PIL import Image

from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters._shared.folders import PROMPT_FILE
from stillguard.adapters._shared.generate import working_photos
from stillguard.adapters.hunyuan15.conditioning import batchable_vae, siglip_pixels
from stillguard.adapters.hunyuan15.planning import sized
from stillguard.adapters.hunyuan15.tiny import VAE
from stillguard.errors import InputError, ModelError

NAME = "hunyuan15-i2v"
LEVEL = 2 / 255  # one 8-bit grey level after SigLIP's normalisation (mean = std = 0.5)


def _photo(a, image):
    """The working-size photo as the pipeline receives it (8-bit PIL) and as the same tensor."""
    (pil,) = working_photos(a, image)
    x8 = torch.from_numpy(np.asarray(pil).copy()).permute(2, 0, 1)[None].float() / 255
    return x8, pil


def test_vae_road_matches_the_pipeline(tiny_adapter, image):
    """The pipeline's own condition latents (PIL photo -> preprocess -> VAE mode -> scaled,
    frame 0, zeros after) are ours, on the same 8-bit photo."""
    a = tiny_adapter(NAME)
    x8, pil = _photo(a, image)
    b, f, c, h, w = a.latent_shape(1)
    with torch.no_grad():
        ref, mask = a.pipe.prepare_cond_latents_and_mask(
            torch.zeros(b, c, f, h, w), pil, 1, a.height, a.width, torch.float32, a.device
        )
        ours = a.encode(x8).image_latents
    torch.testing.assert_close(ours, ref.transpose(1, 2), rtol=0, atol=1e-6)
    assert ours[:, 0].abs().sum() > 0 and (ours[:, 1:] == 0).all()
    assert mask[:, :, 0].eq(1).all() and mask[:, :, 1:].eq(0).all()


def test_siglip_road_matches_the_pipeline(tiny_adapter, image):
    """The SigLIP pixels in torch are PIL's: the filter agrees to 0.01 grey levels in float; the
    8-bit pipeline rounds (and clips) after each of PIL's two passes, hence at most 2 grey levels
    (measured 1.8 at 480x848 -> 384), 0.3 on average. The tokens then differ by what those
    roundings change through the (random, tiny) tower: a few percent of their scale."""
    a = tiny_adapter(NAME)
    fe = a.pipe.feature_extractor
    g = torch.Generator().manual_seed(0)
    low = torch.rand(1, 3, 60, 106, generator=g)
    x8 = (torch.nn.functional.interpolate(low, size=(480, 848), mode="bicubic").clamp(0, 1)
          * 255).round() / 255  # fmt: skip
    chan = (x8[0, 0] * 255).numpy().astype(np.float32)
    pil_f = np.asarray(Image.fromarray(chan, mode="F").resize((384, 384), Image.BICUBIC))
    torch_f = torch.nn.functional.interpolate(
        x8[:, :1] * 255, size=(384, 384), mode="bicubic", antialias=True, align_corners=False
    )[0, 0].numpy()
    assert np.abs(pil_f - torch_f).max() < 0.01
    # the tiny pipeline, on its own working-size photo
    ours8, pil = _photo(a, image)
    ref = fe.preprocess(images=pil, return_tensors="pt")["pixel_values"]
    diff = (siglip_pixels(ours8, fe) - ref).abs()
    assert diff.max() <= 2 * LEVEL + 1e-6 and diff.mean() <= 0.5 * LEVEL
    with torch.no_grad():
        emb_ref = a.pipe._get_image_embeds(a.pipe.image_encoder, fe, pil, a.device)
        emb = a.encode(ours8).image_embeds
    assert emb.shape == emb_ref.shape
    torch.testing.assert_close(emb, emb_ref, rtol=0, atol=0.05 * float(emb_ref.abs().max()))


def test_rollout_equals_the_pipelines_sampler(tiny_adapter, image, monkeypatch):
    """Two Euler steps with the guider's CFG (two forwards a step) are the pipeline's, given the
    same image tokens (the pipeline's PIL SigLIP path is compared above); the gradient reaches
    the photo through the rollout."""
    a = tiny_adapter(NAME)
    x8, pil = _photo(a, image)
    x = x8.clone().requires_grad_(True)
    cond = a.encode(x)
    _, noise = draw_inputs(a, 4)
    tokens = cond.image_embeds.detach()
    monkeypatch.setattr(a.pipe, "encode_image", lambda **kw: tokens.repeat(kw["batch_size"], 1, 1))
    with torch.no_grad():
        ref = a.pipe(image=pil, latents=noise.transpose(1, 2).clone(), num_frames=a.num_frames,
                     num_inference_steps=2, output_type="latent", **a.prompt).frames  # fmt: skip
    ours = a.rollout(cond, noise, 2)
    torch.testing.assert_close(ours.transpose(1, 2), ref, rtol=1e-4, atol=1e-5)
    ours.pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_recorded_map_is_the_models_attention(tiny_adapter, image):
    """map @ V, projected, is the attention module's own output for every recorded row: the
    padded context tokens dropped from the map are exactly those the model ignores."""
    a = tiny_adapter(NAME)
    t, noise = draw_inputs(a)
    layer = a.layer_names("attention")[0]
    attn = a.pipe.transformer.get_submodule(layer)
    seen = {}
    hooks = [
        attn.register_forward_pre_hook(lambda m, args, kw: seen.update(kw), with_kwargs=True),
        attn.register_forward_hook(lambda m, i, out: seen.update(out=out)),
    ]
    try:
        with torch.no_grad(), a.capture(attention=[layer]) as cap:
            a.denoise(image, t, noise)
    finally:
        for h in hooks:
            h.remove()
    probs, text = cap.attention[layer][0], cap.layout[layer]["text"]
    p = a.prompt
    valid = 16 + int(p["prompt_embeds_mask_2"].sum()) + int(p["prompt_embeds_mask"].sum())
    assert text == valid == 16 + 3 + 4  # SigLIP tokens + valid ByT5 + valid Qwen tokens
    hs, ctx = seen["hidden_states"], seen["encoder_hidden_states"]
    with torch.no_grad():
        v = torch.cat([attn.add_v_proj(ctx[:, :text]), attn.to_v(hs)], 1)
        out = probs @ v.unflatten(2, (attn.heads, -1)).transpose(1, 2)
        out = out.transpose(1, 2).flatten(2)
        video = attn.to_out[1](attn.to_out[0](out[:, text:]))
        context = attn.to_add_out(out[:, :text])
    scale = float(seen["out"][0].abs().max())
    torch.testing.assert_close(video, seen["out"][0], rtol=0, atol=1e-5 * scale)
    torch.testing.assert_close(context, seen["out"][1][:, :text], rtol=0, atol=1e-5 * scale)


def test_capture_under_gradient_checkpointing(image):
    a = ADAPTERS.get(NAME).tiny()
    t, noise = draw_inputs(a)
    layer, block = a.layer_names("attention")[-1], a.layer_names("hidden")[-1]
    enable = a.pipe.transformer.enable_gradient_checkpointing
    check_capture_under_checkpointing(a, image, t, noise, layer, block, enable)


def test_sizing_forward_equals_the_stock_forward(tiny_adapter, image):
    """The forward used on fake tensors (no data-dependent steps) computes what the stock one
    does on real tensors, padding included (only the order of the context keys differs)."""
    a = tiny_adapter(NAME)
    t, noise = draw_inputs(a)
    with torch.no_grad():
        ref = a.denoise(image, t, noise).pred
        with sized(a.pipe.transformer):
            got = a.denoise(image, t, noise).pred
    assert "forward" not in vars(a.pipe.transformer)  # restored
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


def test_working_size_must_be_a_bucket(tiny_adapter, tmp_path):
    a = tiny_adapter(NAME)
    a.save_pretrained(str(tmp_path / "m"))
    with pytest.raises(InputError, match="bucket.*use height=40, width=40"):
        ADAPTERS.get(NAME).from_pretrained(str(tmp_path / "m"), height=32, width=32)
    assert a.pipe.video_processor.calculate_default_height_width(32, 48, 40) == (32, 48)


def test_the_stock_vae_cannot_encode_a_batch_and_ours_can():
    """diffusers 0.42.1's mid-block attention mask broadcasts for one item only; if the first
    assertion starts failing, diffusers fixed it and :func:`batchable_vae` can go."""
    from diffusers import AutoencoderKLHunyuanVideo15

    torch.manual_seed(0)
    vae = AutoencoderKLHunyuanVideo15(**VAE).eval()
    x = torch.rand(2, 3, 1, 32, 48, generator=torch.Generator().manual_seed(0)) * 2 - 1
    with torch.no_grad(), pytest.raises(RuntimeError, match="broadcast"):
        vae.encode(x)
    batchable_vae(vae)
    with torch.no_grad():
        both = vae.encode(x).latent_dist.mode()
        alone = torch.cat([vae.encode(x[i : i + 1]).latent_dist.mode() for i in range(2)])
    torch.testing.assert_close(both, alone, rtol=1e-4, atol=1e-5)  # batched kernels: rounding


def test_options_prompt_and_guidance(tiny_adapter, tmp_path):
    a = tiny_adapter(NAME)
    a.save_pretrained(str(tmp_path / "m"))
    cls = ADAPTERS.get(NAME)
    b = cls.from_pretrained(str(tmp_path / "m"), guidance_scale=1.0)
    b.pipe.guider.set_state(step=0, num_inference_steps=2, timestep=torch.tensor(999.0))
    assert b.guidance_scale == 1.0 and b.pipe.guider.num_conditions == 1  # no CFG pass
    assert "precomputed" in b.describe()["text"]
    with pytest.raises(InputError, match="unknown hunyuan15-i2v option"):
        cls.from_pretrained(str(tmp_path / "m"), shift=3.0)
    (tmp_path / "m" / PROMPT_FILE).unlink()
    with pytest.raises(ModelError, match="Qwen2.5-VL"):
        cls.from_pretrained(str(tmp_path / "m"))


def test_real_config_on_meta_matches_published_figures():
    cls = ADAPTERS.get(NAME)
    a = cls.from_config(real_config(NAME, cls.default_model), device="meta")

    def params(m):
        return sum(p.numel() for p in m.parameters())

    tr = a.pipe.transformer
    # published as 8.3B (model card); SigLIP so400m's vision tower and the 32-channel VAE
    assert 8.2e9 < params(tr) < 8.4e9 and len(tr.transformer_blocks) == 54
    assert 0.40e9 < params(a.pipe.image_encoder) < 0.45e9 and 1.2e9 < params(a.pipe.vae) < 1.3e9
    assert tr.config.in_channels == 2 * 32 + 1 and a.pipe.guider.guidance_scale == 6.0
    # 480x848x121 -> 31 latent frames of 30x53 (16x VAE, patch 1): 49,290 video tokens
    _, f, c, h, w = a.latent_shape(1)
    assert (f, c, h, w) == (31, 32, 30, 53) and f * h * w == 49_290
    side = a.pipe.image_encoder.config.image_size // a.pipe.image_encoder.config.patch_size
    assert side * side == 729  # the pipeline's vision_num_semantic_tokens
    assert a.prompt["prompt_embeds"].shape == (1, 1000, 3584)
    assert a.prompt["prompt_embeds_2"].shape == (1, 256, 1472)
    assert len(a.layer_names("attention")) == 54 and a.random_weights
