"""sana-video-i2v specifics: the photo's latent against the pipeline's own, the sampler against the
pipeline's, the linear attention's implied maps against the processor's output, the options and
the real configuration on the meta device."""

from __future__ import annotations

import pytest
import torch
from helpers import check_capture_under_checkpointing, draw_inputs

from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters._shared.folders import PROMPT_FILE
from stillguard.adapters._shared.generate import working_photos
from stillguard.adapters.sana_video.capture import features, linear_map
from stillguard.errors import InputError, ModelError

NAME = "sana-video-i2v"


@pytest.fixture(scope="module")
def implied():
    return ADAPTERS.get(NAME).tiny(linear_map="implied")


def test_encode_matches_the_pipeline(tiny_adapter, image):
    """``prepare_latents`` (VAE mode, Wan normalisation, frame 0 replaced) gives our frame 0."""
    a = tiny_adapter(NAME)
    (pil,) = working_photos(a, image)
    pre = a.pipe.video_processor.preprocess(pil, height=a.height, width=a.width)
    _, f, c, h, w = a.latent_shape(1)
    with torch.no_grad():
        ref = a.pipe.prepare_latents(pre, 1, c, a.height, a.width, a.num_frames, torch.float32,
                                     a.device, None, torch.zeros(1, c, f, h, w))  # fmt: skip
        ours = a.encode(pre * 0.5 + 0.5).image_latents
    torch.testing.assert_close(ours[:, 0], ref[:, :, 0], rtol=0, atol=1e-5)
    assert (ref[:, :, 1:] == 0).all()  # the rest is the given (zero) noise


def test_rollout_equals_the_pipelines_sampler(tiny_adapter, image):
    """Two DPM-Solver++ steps with CFG 6, frames 1+ only, are the pipeline's; the gradient
    reaches the photo through them."""
    a = tiny_adapter(NAME)
    (pil,) = working_photos(a, image)
    x = (a.pipe.video_processor.preprocess(pil, a.height, a.width) * 0.5 + 0.5).requires_grad_(True)
    _, noise = draw_inputs(a, 4)
    (ne, pe), (nm, pm) = (t.chunk(2) for t in a._text(1, True))
    with torch.no_grad():
        ref = a.pipe(image=pil, latents=noise.transpose(1, 2).clone(), prompt_embeds=pe,
                     prompt_attention_mask=pm, negative_prompt=None, negative_prompt_embeds=ne,
                     negative_prompt_attention_mask=nm, height=a.height, width=a.width,
                     frames=a.num_frames, num_inference_steps=2, guidance_scale=a.guidance_scale,
                     use_resolution_binning=False, output_type="latent").frames  # fmt: skip
    ours = a.rollout(x, noise, 2)
    torch.testing.assert_close(ours.transpose(1, 2), ref, rtol=1e-4, atol=1e-5)
    ours[:, 1:].pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _attn_inputs(a, image):
    """What the first ``attn1`` sees in one denoiser call: its module, input and RoPE, output."""
    t, noise = draw_inputs(a)
    attn = a.pipe.transformer.transformer_blocks[0].attn1
    seen = {}
    hooks = [
        attn.register_forward_pre_hook(lambda m, args, kw: seen.update(x=args[0], **kw),
                                       with_kwargs=True),
        attn.register_forward_hook(lambda m, i, out: seen.update(out=out)),
    ]  # fmt: skip
    try:
        with torch.no_grad():
            a.denoise(image, t, noise)
    finally:
        for h in hooks:
            h.remove()
    return attn, seen["x"], seen["rotary_emb"], seen["out"]


def _through_values(attn, x, probs):
    """``probs @ V`` projected by ``to_out``, as the processor ends. ``probs (B, heads, N, N)``."""
    v = attn.to_v(x).unflatten(2, (attn.heads, -1)).transpose(1, 2).float()
    out = (probs.float() @ v).transpose(1, 2).flatten(2).to(x.dtype)
    return attn.to_out[1](attn.to_out[0](out))


def test_implied_map_times_values_is_the_processors_output(implied, image):
    """The ``implied`` map is the layer's exact linear operator (RoPE in the numerator): the
    recorded map times V is the stock processor's output (float32: 1e-5 of its scale)."""
    attn, x, rope, out = _attn_inputs(implied, image)
    t, noise = draw_inputs(implied)
    layer = "transformer_blocks.0.attn1"
    with torch.no_grad(), implied.capture(attention=[layer]) as cap:
        implied.denoise(image, t, noise)
    probs = cap.attention[layer][0]
    with torch.no_grad():
        got = _through_values(attn, x, probs)
        q, k, qr, kr = features(attn, x, rope)
        assert torch.equal(probs, linear_map(q, k, qr, kr, True))
    torch.testing.assert_close(got, out, rtol=0, atol=1e-5 * float(out.abs().max()))
    sums = probs.sum(-1)
    assert not torch.allclose(sums, torch.ones(())), "RoPE should move the implied rows off 1"


def test_kernel_map_is_the_implied_map_without_rope(tiny_adapter, image):
    """The default ``kernel`` map: rows sum to 1, entries >= 0, and map times V is the stock
    processor's output when the RoPE is left out (an identity rotation)."""
    from diffusers.models.transformers.transformer_sana_video import SanaLinearAttnProcessor3_0

    a = tiny_adapter(NAME)
    assert a.linear_map == "kernel"
    attn, x, rope, _ = _attn_inputs(a, image)
    with torch.no_grad():
        q, k, qr, kr = features(attn, x, rope)
        probs = linear_map(q, k, qr, kr, False)
        assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5) and (probs >= 0).all()
        # the stock processor needs a RoPE (it fails on None): the identity rotation
        no_rope = (torch.ones_like(rope[0]), torch.zeros_like(rope[1]))
        ref = SanaLinearAttnProcessor3_0()(attn, x, rotary_emb=no_rope)
        got = _through_values(attn, x, probs)
    torch.testing.assert_close(got, ref, rtol=0, atol=1e-5 * float(ref.abs().max()))


@pytest.mark.parametrize("which", ["kernel", "implied"])
def test_pooled_maps_are_exact_frame_aggregates(which, tiny_adapter, implied, image):
    """Pooled entry (f, g) = sum over key frame g of the exact rows of frame f, averaged over
    those rows weighted by their normalisers (bilinear kernel: no approximation)."""
    a = implied if which == "implied" else tiny_adapter(NAME)
    attn, x, rope, _ = _attn_inputs(a, image)
    frames = a.latent_shape(1)[1]
    t, noise = draw_inputs(a)
    layer = "transformer_blocks.0.attn1"
    with torch.no_grad(), a.capture(attention=[layer], mode="pooled") as cap:
        a.denoise(image, t, noise)
    pooled = cap.attention[layer][0]
    with torch.no_grad():
        q, k, qr, kr = features(attn, x, rope)
        full = linear_map(q, k, qr, kr, which == "implied")  # (B, heads, N, N)
        den = (q @ k.sum(2, keepdim=True).transpose(-1, -2))[..., 0]  # (B, heads, N)
    per_key = full.unflatten(-1, (frames, -1)).sum(-1)  # (B, heads, N, F)
    weighted = (per_key * den[..., None]).unflatten(2, (frames, -1)).sum(3)
    expected = weighted / den.unflatten(2, (frames, -1)).sum(3)[..., None]
    assert pooled.shape == (1, attn.heads, frames, frames)
    torch.testing.assert_close(pooled, expected, rtol=1e-4, atol=1e-6)


def test_capture_under_gradient_checkpointing(image):
    a = ADAPTERS.get(NAME).tiny()
    t, noise = draw_inputs(a)
    layer, block = a.layer_names("attention")[-1], a.layer_names("hidden")[-1]
    enable = a.pipe.transformer.enable_gradient_checkpointing
    check_capture_under_checkpointing(a, image, t, noise, layer, block, enable)


def test_options_tiling_and_prompt(tiny_adapter, tmp_path):
    a = tiny_adapter(NAME)
    a.save_pretrained(str(tmp_path / "m"))
    cls = ADAPTERS.get(NAME)
    b = cls.from_pretrained(str(tmp_path / "m"), linear_map="implied")
    assert b.linear_map == "implied" and b.describe()["linear_map"] == "implied"
    with pytest.raises(InputError, match="linear_map"):
        cls.from_pretrained(str(tmp_path / "m"), linear_map="softmax")
    with pytest.raises(InputError, match="multiples of 32"):
        cls.from_pretrained(str(tmp_path / "m"), height=48)
    for build in (cls.from_pretrained, cls.from_config):
        with pytest.raises(InputError, match="no VAE tiling"):
            build(str(tmp_path / "m"), vae_tiling=True)
    with pytest.raises(InputError, match="unknown sana-video-i2v option"):
        cls.from_pretrained(str(tmp_path / "m"), motion_score=30)
    (tmp_path / "m" / PROMPT_FILE).unlink()
    with pytest.raises(ModelError, match="Gemma"):
        cls.from_pretrained(str(tmp_path / "m"))


def test_real_config_on_meta_matches_published_figures():
    cls = ADAPTERS.get(NAME)
    a = cls.from_config(real_config(NAME, cls.default_model), device="meta")
    tr = a.pipe.transformer
    n = sum(p.numel() for p in tr.parameters())
    assert 2.0e9 < n < 2.1e9 and len(tr.transformer_blocks) == 20  # published as "2B"
    # 480x832x81 -> 21 latent frames of 60x104 (8x Wan VAE), patch 2: 21*30*52 = 32,760 tokens
    _, f, c, h, w = a.latent_shape(1)
    assert (f, c, h, w) == (21, 16, 60, 104) and f * (h // 2) * (w // 2) == 32_760
    assert a.prompt["prompt_embeds"].shape == (1, 300, 2304)
    assert len(a.layer_names("attention")) == 20 and a.random_weights
    assert a.pipe.scheduler.config.flow_shift == 8.0 and a.guidance_scale == 6.0
