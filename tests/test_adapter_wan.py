"""Wan-specific checks of ``wan-i2v`` beyond the registry-wide contract: the pipeline's own numbers,
the two-expert switch of Wan2.2-A14B, TI2V's first-frame mode, attention maps that reproduce the
module's output, and the shipped real configurations (built on the meta device)."""

from __future__ import annotations

import pytest
import torch
from helpers import (
    as_pil,
    check_capture_under_checkpointing,
    draw_inputs,
    eight_bit,
    exact_map_and_io,
    save_tiny_text_encoder,
)

from stillguard import protect
from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters._shared.clip_image import clip_pixels
from stillguard.adapters.official import config_folder
from stillguard.errors import InputError

WAN = ADAPTERS.get("wan-i2v")
_CACHE: dict[str, object] = {}


def tiny(flavour: str):
    if flavour not in _CACHE:
        _CACHE[flavour] = WAN.tiny(seed=0, flavour=flavour)
    return _CACHE[flavour]


@pytest.mark.parametrize("flavour", ["wan2.1", "wan2.2-a14b", "wan2.2-ti2v"])
def test_encode_matches_the_pipelines_latents(flavour, image):
    a = tiny(flavour)
    x = eight_bit(a, image)
    pre = a.pipe.video_processor.preprocess(x, height=a.height, width=a.width)
    z = a.pipe.vae.config.z_dim
    with torch.no_grad():
        out = a.pipe.prepare_latents(
            pre, 1, z, a.height, a.width, a.num_frames, torch.float32, a.device, None, None
        )
        cond = a.encode(x)
    ours = cond.image_latents.permute(0, 2, 1, 3, 4)
    if flavour == "wan2.2-ti2v":
        _, ref, mask = out
        torch.testing.assert_close(ours[:, :, :1], ref, rtol=1e-5, atol=1e-6)
        assert not ours[:, :, 1:].any() and cond.extra == {}
        assert mask[0, 0, 0].eq(0).all() and mask[0, 0, 1:].eq(1).all()
    else:
        _, ref = out
        torch.testing.assert_close(ours, ref[:, 4:], rtol=1e-5, atol=1e-6)
        assert torch.equal(cond.extra["mask"].permute(0, 2, 1, 3, 4), ref[:, :4])
    assert (cond.image_embeds is not None) == (flavour == "wan2.1")


def test_clip_path_matches_the_pipeline_and_carries_gradient(image):
    """Torch CLIP preprocessing vs the pipeline's PIL processor on the same 8-bit photo."""

    a = tiny("wan2.1")
    x8 = eight_bit(a, image)
    pil = as_pil(x8)
    proc = a.pipe.image_processor
    with torch.no_grad():
        ref_pix = proc(images=pil, return_tensors="pt").pixel_values
        ours_pix = clip_pixels(x8, proc)
        ref = a.pipe.encode_image(pil, a.device)
        ours = a.clip_embeds(x8)
    std = torch.tensor(proc.image_std).view(1, 3, 1, 1)
    # PIL rounds its resized image to 8 bit: at most about one grey level apart
    assert ((ours_pix - ref_pix) * std).abs().max() < 1.5 / 255
    assert ours.shape == ref.shape == (1, 17, 8)  # 16 patches + class token, penultimate layer
    assert torch.nn.functional.cosine_similarity(ours.flatten(), ref.flatten(), 0) > 0.999
    x = image.clone().requires_grad_(True)
    a.encode(x).image_embeds.pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def test_exact_maps_reproduce_the_attention_output(image):
    """softmax(QKᵀ/√d)·V through ``to_out`` equals what ``attn1`` returned: q, k, RoPE, norms and
    the layout of the recorded maps are the module's own."""
    a = tiny("wan2.1")
    layer = a.layer_names("attention")[-1]
    mod = a.pipe.transformer.get_submodule(layer)
    probs, lay, seen_in, seen_out = exact_map_and_io(a, image, layer)
    assert lay["text"] == 0 and lay["frames"] * lay["per_frame"] == probs.shape[-1]
    assert lay["frames"] == a.latent_shape(1)[1]
    v = mod.to_v(seen_in).unflatten(2, (mod.heads, -1)).transpose(1, 2)
    out = mod.to_out[0]((probs @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(out, seen_out, rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("mode", ["sampled", "pooled"])
def test_cheap_attention_modes(mode, image):
    a = tiny("wan2.1")
    layers = a.layer_names("attention")
    t, noise = draw_inputs(a)
    gen = torch.Generator().manual_seed(1)
    x = image.clone().requires_grad_(True)
    with a.capture(attention=layers, mode=mode, max_queries=7, generator=gen) as cap:
        a.denoise(x, t, noise)
    f, n_tok = a.latent_shape(1)[1], cap.layout[layers[0]]["per_frame"]
    probs = cap.attention[layers[0]][0]
    if mode == "pooled":
        assert probs.shape[-2:] == (f, f) and cap.layout[layers[0]]["per_frame"] == 1
    else:
        assert probs.shape[-2:] == (7, f * n_tok)
    assert torch.allclose(probs.sum(-1), torch.ones(()), atol=1e-5)
    sum(cap.attention[n][0].pow(2).sum() for n in layers).backward()
    assert x.grad.abs().sum() > 0


def test_a14b_routes_each_timestep_to_its_expert(image):
    a = tiny("wan2.2-a14b")
    high, low = a.experts
    calls = {"high": 0, "low": 0}
    hooks = [
        high.register_forward_hook(lambda *_: calls.__setitem__("high", calls["high"] + 1)),
        low.register_forward_hook(lambda *_: calls.__setitem__("low", calls["low"] + 1)),
    ]
    _, noise = draw_inputs(a)
    try:
        with torch.no_grad():
            cond = a.encode(image)
            p_high = a.denoise(cond, torch.tensor([950.0]), noise).pred
            assert calls == {"high": 1, "low": 0}
            p_low = a.denoise(cond, torch.tensor([100.0]), noise).pred
            assert calls == {"high": 1, "low": 1}
            both = a.denoise(
                type(cond)(*(torch.cat([v, v]) for v in (cond.image_latents, cond.first_latent)),
                           extra={k: torch.cat([v, v]) for k, v in cond.extra.items()}),
                torch.tensor([950.0, 100.0]), torch.cat([noise, noise]),
            ).pred  # fmt: skip
    finally:
        for h in hooks:
            h.remove()
    torch.testing.assert_close(both, torch.cat([p_high, p_low]))
    assert a._expert(900.0)[0] is high and a._expert(899.0)[0] is low  # t >= 0.9·1000: high noise
    # a capture follows whichever expert ran; the rollout crosses the boundary
    layer = a.layer_names("attention")[0]
    x = image.clone().requires_grad_(True)
    with a.capture(hidden=a.layer_names("hidden")[-1:], attention=[layer]) as cap:
        z = a.rollout(x, noise, steps=4)
    ts = a._rollout_scheduler.timesteps
    assert (ts >= 900).any() and (ts < 900).any()
    assert len(cap.attention[layer]) == len(cap.hidden[a.layer_names("hidden")[-1]]) == 4
    z.pow(2).mean().backward()
    assert x.grad.abs().sum() > 0


def test_ti2v_first_frame_mode(image):
    a = tiny("wan2.2-ti2v")
    assert a.flavour == "wan2.2-ti2v" and "image-embeds" not in a.capabilities
    assert a.describe()["flavour"] == "wan2.2-ti2v" and a.describe()["experts"] == 1
    seen = {}
    hook = a.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kw: seen.update(t=kw["timestep"], h=kw["hidden_states"]), with_kwargs=True
    )
    t, noise = draw_inputs(a)
    try:
        with torch.no_grad():
            cond = a.encode(image)
            out = a.denoise(cond, t, noise)
    finally:
        hook.remove()
    per_frame = a.latent_shape(1)[-2] * a.latent_shape(1)[-1] // 4  # patch 2×2
    assert seen["t"].shape == (1, a.latent_shape(1)[1] * per_frame)
    assert seen["t"][0, :per_frame].eq(0).all()
    torch.testing.assert_close(seen["t"][0, per_frame:], t.expand(seen["t"].shape[1] - per_frame))
    photo = cond.image_latents[:, :1]
    torch.testing.assert_close(seen["h"][:, :, :1].permute(0, 2, 1, 3, 4), photo)
    assert torch.equal(out.x0[:, :1], photo) and torch.equal(out.noisy[:, :1], photo)
    assert torch.equal(out.target[:, :1], out.pred[:, :1])  # frame 0 is ignored by the loss
    x = image.clone().requires_grad_(True)
    z = a.rollout(x, noise, steps=2)
    assert torch.equal(z[:, :1].detach(), photo)
    z[:, 1:].pow(2).mean().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("flavour", ["wan2.2-a14b", "wan2.2-ti2v"])
@pytest.mark.parametrize("method", ["vid-freeze", "rollout-freeze", "anti-i2v"])
def test_methods_run_on_the_other_flavours(flavour, method, image):
    opts = {"attention_mode": "sampled", "max_queries": 8} if method == "vid-freeze" else {}
    p = protect(
        image, tiny(flavour), method, steps=2, eps=6 / 255, space="rgb", method_options=opts
    )
    assert p.delta.abs().max() > 0 and all(torch.isfinite(torch.tensor(p.losses)))


def test_prompt_embeds_are_padded_to_512_tokens(image):
    pipe_a = tiny("wan2.1")
    short = pipe_a.prompt_embeds[:, :6]
    a = WAN(
        pipe_a.pipe, model_id="tiny", prompt_embeds=short, negative_prompt_embeds=None,
        settings=dict(height=64, width=64, num_frames=9), device=torch.device("cpu"),
        dtype=torch.float32,
    )  # fmt: skip
    assert a.prompt_embeds.shape[1] == a.negative_prompt_embeds.shape[1] == 512
    assert torch.equal(a.prompt_embeds, pipe_a.prompt_embeds)
    with pytest.raises(InputError, match="512"):
        WAN(
            pipe_a.pipe, model_id="tiny", prompt_embeds=torch.zeros(1, 600, 16),
            negative_prompt_embeds=None, settings={}, device=torch.device("cpu"),
            dtype=torch.float32,
        )  # fmt: skip


def test_condition_grad_first_keeps_the_values(image, tmp_path):
    tiny("wan2.1").save_pretrained(str(tmp_path / "m"))
    a = WAN.from_pretrained(str(tmp_path / "m"), condition_grad="first")
    b = tiny("wan2.1")
    with torch.no_grad():
        torch.testing.assert_close(a.encode(image).image_latents, b.encode(image).image_latents)
    x = image.clone().requires_grad_(True)
    a.encode(x).image_latents.pow(2).mean().backward()
    assert x.grad.abs().sum() > 0
    with pytest.raises(InputError, match="option"):
        WAN.from_pretrained(str(tmp_path / "m"), frames=9)


def test_from_config_builds_a_config_only_folder(tmp_path, image):
    tiny("wan2.2-a14b").save_pretrained(str(tmp_path / "m"))
    for f in (tmp_path / "m").rglob("*.safetensors"):
        f.unlink()
    a = WAN.from_config(tmp_path / "m", seed=3)
    assert a.flavour == "wan2.2-a14b" and len(a.experts) == 2 and a.boundary == 0.9
    assert a.prompt_embeds.shape == (1, 512, 16) and not a.prompt_embeds.any()
    t, noise = draw_inputs(a)
    assert a.denoise(image, t, noise).pred.shape == a.latent_shape(1)
    # the planner's way: nothing allocated, shapes still flow (here through both experts)
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    with FakeTensorMode():
        f = WAN.from_config(tmp_path / "m", dtype=torch.bfloat16)
        assert isinstance(f.experts[1].blocks[0].attn1.to_q.weight, FakeTensor)
        x, noise = torch.rand(1, 3, 64, 64), torch.randn(f.latent_shape(1))
        for t in (950.0, 100.0):  # high- and low-noise expert
            out = f.denoise(x, torch.tensor([t]), noise).pred
            assert out.shape == f.latent_shape(1) and out.dtype == torch.bfloat16


#: published sizes: Wan2.1 README ("I2V-14B"), Wan2.2 README ("27B MoE ... 14B active" per
#: step, "TI2V-5B"); token counts: issue 13 (32,760 at 480p, 75,600 at 720p, 27,280 for TI2V-5B)
REAL = {
    "Wan-AI/Wan2.1-I2V-14B-480P-Diffusers": ("wan2.1", 14e9, 32_760),
    "Wan-AI/Wan2.1-I2V-14B-720P-Diffusers": ("wan2.1", 14e9, 75_600),
    "Wan-AI/Wan2.2-I2V-A14B-Diffusers": ("wan2.2-a14b", 14e9, 75_600),
    "Wan-AI/Wan2.2-TI2V-5B-Diffusers": ("wan2.2-ti2v", 5e9, 27_280),
}
_IMAGE_ONLY = ("image_embedder", "add_k_proj", "add_v_proj", "norm_added_k")


@pytest.mark.parametrize("hub_id", sorted(REAL))
def test_real_configs_build_on_meta(hub_id):
    flavour, per_expert, tokens = REAL[hub_id]
    folder = real_config("wan-i2v", hub_id)
    assert folder == config_folder(WAN.real_models[hub_id])
    assert real_config("wan-i2v") == config_folder("wan2.1-i2v-14b-480p")  # the default model
    a = WAN.from_config(folder, device="meta", dtype=torch.bfloat16)
    assert a.flavour == flavour and all(p.is_meta for p in a.experts[0].parameters())
    block = a.experts[0].blocks[0]  # float32 where diffusers keeps it when loading in bf16
    assert block.attn1.to_q.weight.dtype == torch.bfloat16
    assert block.scale_shift_table.dtype == torch.float32
    for tr in a.experts:
        # the published round figure counts the DiT shared with text-to-video; Wan2.1-I2V adds
        # ~2.1B of CLIP cross-attention projections on top (16.4B in all)
        shared = sum(
            p.numel() for k, p in tr.named_parameters() if not any(s in k for s in _IMAGE_ONLY)
        )
        assert abs(shared / per_expert - 1) < 0.05, shared
        total = sum(p.numel() for p in tr.parameters())
        assert (total > 1.1 * shared) == (flavour == "wan2.1")
    _, f, _, h, w = a.latent_shape(1)
    assert f * (h // 2) * (w // 2) == tokens
    assert a.prompt_embeds.shape == (1, 512, 4096)
    assert a.is_real


@pytest.mark.parametrize("flavour", ["wan2.1", "wan2.2-a14b", "wan2.2-ti2v"])
def test_rollout_is_the_pipelines_sampler(flavour, image, monkeypatch):
    """Without grad, the differentiable rollout lands where the pipeline's own ``__call__`` does
    from the same noise: same UniPC steps, CFG, expert switch and first-frame replacement."""

    a = tiny(flavour)
    x8 = eight_bit(a, image)
    pil = as_pil(x8)
    _, noise = draw_inputs(a, seed=5)
    with torch.no_grad():
        cond = a.encode(x8)
        if cond.image_embeds is not None:  # same CLIP tokens on both sides (PIL resize differs)
            monkeypatch.setattr(a.pipe, "encode_image", lambda *_: cond.image_embeds)
        ours = a.rollout(cond, noise, steps=4)
        extra = {"guidance_scale_2": 1.5} if a.boundary is not None else {}
        if extra:
            monkeypatch.setattr(a, "guidance_scale_2", 1.5)
            ours_g2 = a.rollout(cond, noise, steps=4)
            assert not torch.allclose(ours_g2, ours)  # the low-noise stage has its own scale
            ours = ours_g2
        ref = a.pipe(
            image=pil, prompt_embeds=a.prompt_embeds,
            negative_prompt_embeds=a.negative_prompt_embeds,
            height=a.height, width=a.width, num_frames=a.num_frames, num_inference_steps=4,
            guidance_scale=a.guidance_scale, latents=noise.permute(0, 2, 1, 3, 4),
            output_type="latent", **extra,
        ).frames  # fmt: skip
    torch.testing.assert_close(ours, ref.permute(0, 2, 1, 3, 4), rtol=1e-4, atol=1e-5)


def test_prompt_is_embedded_once_with_umt5_without_ftfy(tmp_path):
    """A folder with a tiny offline UMT5: embeddings as the pipeline builds them (zeros past the
    prompt's tokens, 512 in all); the text encoder is dropped afterwards."""
    from transformers import UMT5Config, UMT5EncoderModel

    folder = tmp_path / "with-umt5"
    tiny("wan2.1").save_pretrained(str(folder))
    (folder / "prompt_embeds.safetensors").unlink()
    words = ["a", "cat", "runs"]
    _, umt5 = save_tiny_text_encoder(folder, words, UMT5EncoderModel, UMT5Config, register=True)

    a = WAN.from_pretrained(str(folder), prompt="  a   cat runs ")
    assert a.pipe.text_encoder is None and a.pipe.tokenizer is None
    with torch.no_grad():
        expected = umt5(torch.tensor([[3, 4, 5]])).last_hidden_state
    assert a.prompt_embeds.shape == (1, 512, 16)
    torch.testing.assert_close(a.prompt_embeds[:, :3], expected)
    assert not a.prompt_embeds[:, 3:].any()
    assert a.negative_prompt_embeds.shape == (1, 512, 16) and not a.negative_prompt_embeds.any()


def test_capture_under_gradient_checkpointing(image):
    a = WAN.tiny(seed=0)
    t, noise = draw_inputs(a)
    layer, block = a.layer_names("attention")[-1], a.layer_names("hidden")[-1]
    check_capture_under_checkpointing(
        a, image, t, noise, layer, block, a.pipe.transformer.enable_gradient_checkpointing,
        lambda: dict(mode="sampled", max_queries=5, generator=torch.Generator().manual_seed(2)),
    )  # fmt: skip


@pytest.mark.parametrize("flavour", ["wan2.2-a14b", "wan2.2-ti2v"])
def test_generate_on_the_other_flavours(flavour, image):
    a = tiny(flavour)
    v0 = a.generate(image, seed=0, num_inference_steps=2)
    assert tuple(v0.shape) == (1, a.num_frames, 3, a.height, a.width)
    assert torch.equal(v0, a.generate(image, seed=0, num_inference_steps=2))
    assert not torch.equal(v0, a.generate(image, seed=1, num_inference_steps=2))


def test_opt_num_frames_shortens_optimisation_only(image, tmp_path):
    tiny("wan2.1").save_pretrained(str(tmp_path / "m"))
    a = WAN.from_pretrained(str(tmp_path / "m"), opt_num_frames=5)
    assert a.latent_shape(1)[1] == 2 and a.num_frames == 9
    cond = a.encode(image)
    assert cond.image_latents.shape[1] == cond.extra["mask"].shape[1] == 2
    t, noise = draw_inputs(a)
    assert a.denoise(cond, t, noise).pred.shape == a.latent_shape(1)
    assert a.generate(image, seed=0, num_inference_steps=1).shape[1] == 9
