"""SkyReels-V2-specific checks of ``skyreels-v2-i2v`` beyond the registry-wide contract: the
pipelines' own numbers (latents, CLIP pixels, the sampler of both flavours), the diffusion-forcing
prefix frame, the flavour read from the folder, the loader gap of the published ``CLIPProcessor``,
and the shipped real configurations (built on the meta device)."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import (
    as_pil,
    check_capture_under_checkpointing,
    denoise_seen,
    draw_inputs,
    eight_bit,
    exact_map_and_io,
    save_tiny_text_encoder,
)

from stillguard import protect
from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters._shared.clip_image import clip_pixels
from stillguard.adapters.official import config_folder
from stillguard.errors import InputError, ModelError

SKY = ADAPTERS.get("skyreels-v2-i2v")
DF = "diffusion-forcing"
_CACHE: dict[str, object] = {}


def tiny(flavour: str = "i2v"):
    if flavour not in _CACHE:
        _CACHE[flavour] = SKY.tiny(seed=0, flavour=flavour)
    return _CACHE[flavour]


@pytest.mark.parametrize("flavour", ["i2v", DF])
def test_encode_matches_the_pipelines_latents(flavour, image):
    a = tiny(flavour)
    x = eight_bit(a, image)
    pre = a.pipe.video_processor.preprocess(x, height=a.height, width=a.width)
    with torch.no_grad():
        out = a.pipe.prepare_latents(
            pre, 1, 16, a.height, a.width, a.num_frames, torch.float32, a.device, None, None
        )
        cond = a.encode(x)
    ours = cond.image_latents.permute(0, 2, 1, 3, 4)
    if flavour == DF:
        _, frames, prefix, n_prefix = out
        assert n_prefix == 1 and frames == a.latent_shape(1)[1]
        torch.testing.assert_close(ours[:, :, :1], prefix, rtol=1e-5, atol=1e-6)
        assert not ours[:, :, 1:].any() and cond.extra == {} and cond.image_embeds is None
    else:
        _, ref = out
        torch.testing.assert_close(ours, ref[:, 4:], rtol=1e-5, atol=1e-6)
        assert torch.equal(cond.extra["mask"].permute(0, 2, 1, 3, 4), ref[:, :4])
        assert cond.image_embeds.shape == (1, 17, 8)  # 16 patches + class token, layer -2


def test_clip_path_matches_the_pipeline_and_carries_gradient(image):
    """Torch CLIP preprocessing vs the pipeline's PIL processor on the same 8-bit photo."""
    a = tiny()
    x8 = eight_bit(a, image)
    pil = as_pil(x8)
    proc = a.pipe.image_processor
    with torch.no_grad():
        ref_pix = proc(images=pil, return_tensors="pt").pixel_values
        ref = a.pipe.encode_image(pil, a.device)
        ours = a.clip_embeds(x8)
    std = torch.tensor(proc.image_std).view(1, 3, 1, 1)
    # PIL rounds its resized image to 8 bit: at most about one grey level apart
    assert ((clip_pixels(x8, proc) - ref_pix) * std).abs().max() < 1.5 / 255
    assert torch.nn.functional.cosine_similarity(ours.flatten(), ref.flatten(), 0) > 0.999
    x = image.clone().requires_grad_(True)
    a.encode(x).image_embeds.pow(2).mean().backward()
    assert x.grad.abs().sum() > 0


@pytest.mark.parametrize("flavour", ["i2v", DF])
def test_rollout_is_the_pipelines_sampler(flavour, image, monkeypatch):
    """Without grad, the differentiable rollout lands where the pipeline's own ``__call__`` does
    from the same noise (UniPC, CFG; DF: prefix frame, per-frame timesteps, its stepping)."""
    from stillguard.adapters._shared import unipc

    a = tiny(flavour)
    x8 = eight_bit(a, image)
    _, noise = draw_inputs(a, seed=5)
    extra = dict(base_num_frames=a.num_frames, fps=a.fps) if flavour == DF else {}
    with torch.no_grad():
        cond = a.encode(x8)
        if cond.image_embeds is not None:  # same CLIP tokens on both sides (PIL resize differs)
            monkeypatch.setattr(a.pipe, "encode_image", lambda *_: cond.image_embeds)
        ours = a.rollout(cond, noise, steps=4)
        ref = a.pipe(
            image=as_pil(x8), prompt_embeds=a.prompt_embeds,
            negative_prompt_embeds=a.negative_prompt_embeds, height=a.height, width=a.width,
            num_frames=a.num_frames, num_inference_steps=4, guidance_scale=a.guidance_scale,
            latents=noise.permute(0, 2, 1, 3, 4).clone(), output_type="latent", **extra,
        ).frames.permute(0, 2, 1, 3, 4)  # fmt: skip
        torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
        if flavour == DF:  # the pipeline's per-frame stepping is not plain UniPC: reproduced
            plain = unipc.unipc_rollout
            monkeypatch.setattr(
                unipc,
                "unipc_rollout",
                lambda *a_, **k: plain(*a_, **{**k, "stale_first_sample": False}),
            )
            from stillguard.adapters.skyreels import generate

            monkeypatch.setattr(generate, "unipc_rollout", unipc.unipc_rollout)
            assert (a.rollout(cond, noise, steps=4) - ref).abs().max() > 1e-2
    x = image.clone().requires_grad_(True)
    a.rollout(x, noise, steps=2).pow(2).mean().backward()
    assert x.grad.abs().sum() > 0


def test_exact_maps_reproduce_the_attention_output(image):
    """softmax(QKᵀ/√d)·V through ``to_out`` equals what ``attn1`` returned: q, k, RoPE, norms and
    the layout of the recorded maps are the module's own."""
    a = tiny()
    layer = a.layer_names("attention")[-1]
    mod = a.pipe.transformer.get_submodule(layer)
    probs, lay, seen_in, seen_out = exact_map_and_io(a, image, layer)
    assert lay["text"] == 0 and lay["frames"] == a.latent_shape(1)[1]
    assert lay["frames"] * lay["per_frame"] == probs.shape[-1] == 3 * 2 * 3
    v = mod.to_v(seen_in).unflatten(2, (mod.heads, -1)).transpose(1, 2)
    out = mod.to_out[0]((probs @ v).transpose(1, 2).flatten(2))
    torch.testing.assert_close(out, seen_out, rtol=1e-4, atol=1e-5)


def test_diffusion_forcing_prefix_frame(image):
    """DF: the photo's latent is frame 0 with per-frame timestep 0, the fps flag goes in, frame 0
    is out of the loss and kept by the rollout."""
    a = tiny(DF)
    assert (
        a.flavour == DF and "image-embeds" not in a.capabilities and a.describe()["flavour"] == DF
    )
    with torch.no_grad():
        cond = a.encode(image)
    seen, t, noise, out = denoise_seen(a, cond)
    f = a.latent_shape(1)[1]
    assert seen["enable_diffusion_forcing"] is True and seen["fps"] == [1]  # fps 24 -> 1
    assert seen["timestep"].shape == (1, f) and seen["timestep"][0, 0] == 0
    torch.testing.assert_close(seen["timestep"][0, 1:], t.expand(f - 1))
    photo = cond.image_latents[:, :1]
    torch.testing.assert_close(seen["hidden_states"][:, :, :1].permute(0, 2, 1, 3, 4), photo)
    assert torch.equal(out.x0[:, :1], photo) and torch.equal(out.noisy[:, :1], photo)
    assert torch.equal(out.target[:, :1], out.pred[:, :1])  # frame 0 is ignored by the loss
    x = image.clone().requires_grad_(True)
    z = a.rollout(x, noise, steps=2)
    assert torch.equal(z[:, :1].detach(), photo)
    z[:, 1:].pow(2).mean().backward()
    assert x.grad.abs().sum() > 0


def test_diffusion_forcing_batches_despite_the_fps_broadcast():
    """diffusers tiles the fps projection per frame, which only broadcasts from a batch of one
    (a per-item fps list fails for two); one flag for the batch gives two singles' outputs."""
    a = tiny(DF)
    tr = a.pipe.transformer
    x = torch.randn(2, 16, 3, 4, 6)
    t = torch.tensor([[0.0, 500.0, 500.0], [0.0, 300.0, 300.0]])
    text = a.prompt_embeds.expand(2, -1, -1)
    kw = dict(encoder_hidden_states=text, enable_diffusion_forcing=True, return_dict=False)
    with torch.no_grad():
        with pytest.raises(RuntimeError):
            tr(hidden_states=x, timestep=t, fps=[1, 1], **kw)
        both = tr(hidden_states=x, timestep=t, fps=[1], **kw)[0]
        one = [tr(hidden_states=x[i : i + 1], timestep=t[i : i + 1], fps=[1],
                  **{**kw, "encoder_hidden_states": text[:1]})[0] for i in range(2)]  # fmt: skip
    torch.testing.assert_close(both, torch.cat(one), rtol=1e-4, atol=1e-5)


def test_addnoise_condition_renoises_the_prefix(image, tmp_path):
    tiny(DF).save_pretrained(str(tmp_path / "df"))
    a = SKY.from_pretrained(str(tmp_path / "df"), addnoise_condition=20)
    seen = {}
    hook = a.pipe.transformer.register_forward_pre_hook(
        lambda m, args, kw: seen.update(t=kw["timestep"]), with_kwargs=True
    )
    t, noise = draw_inputs(a)
    try:
        with torch.no_grad():
            cond = a.encode(image)
            out = a.denoise(cond, t, noise)
            again = a.denoise(cond, t, noise)
    finally:
        hook.remove()
    assert seen["t"][0, 0] == 20
    c, prefix = cond.image_latents[:, 0], out.noisy[:, 0]
    assert not torch.allclose(prefix, c) and torch.equal(prefix, again.noisy[:, 0])  # keyed
    assert (prefix - 0.98 * c).abs().max() < 0.1  # c·(1 − 0.02) + 0.02·ε
    v0 = a.generate(image, seed=0, num_inference_steps=2)  # the pipeline's global-RNG draw, seeded
    assert torch.equal(v0, a.generate(image, seed=0, num_inference_steps=2))


def test_flavour_is_read_from_the_folder(tmp_path, image):
    tiny(DF).save_pretrained(str(tmp_path / "df"))
    b = SKY.from_pretrained(str(tmp_path / "df"))
    assert b.flavour == DF and type(b.pipe).__name__.endswith(
        "DiffusionForcingImageToVideoPipeline"
    )
    # the published DF folders name the text-to-video DF class: it serves image-to-video too
    index = json.loads((tmp_path / "df" / "model_index.json").read_text())
    index["_class_name"] = "SkyReelsV2DiffusionForcingPipeline"
    (tmp_path / "df" / "model_index.json").write_text(json.dumps(index))
    assert SKY.from_pretrained(str(tmp_path / "df")).flavour == DF
    index["_class_name"] = "SkyReelsV2Pipeline"
    (tmp_path / "df" / "model_index.json").write_text(json.dumps(index))
    with pytest.raises(ModelError, match="text-to-video"):
        SKY.from_pretrained(str(tmp_path / "df"))
    ADAPTERS.get("wan-i2v").tiny().save_pretrained(str(tmp_path / "wan"))
    with pytest.raises(ModelError, match="WanImageToVideoPipeline"):
        SKY.from_pretrained(str(tmp_path / "wan"))
    # a config-only folder (weights removed) builds the same design with random weights
    tiny().save_pretrained(str(tmp_path / "i2v"))
    for f in (tmp_path / "i2v").rglob("*.safetensors"):
        f.unlink()
    c = SKY.from_config(tmp_path / "i2v", seed=3)
    assert c.flavour == "i2v" and c.prompt_embeds.shape == (1, 512, 16)
    t, noise = draw_inputs(c)
    assert c.denoise(image, t, noise).pred.shape == c.latent_shape(1)


def test_a_hub_id_in_the_local_cache_loads_with_its_flavour(tmp_path, monkeypatch, image):
    """A hub id is read from the local hub cache only: its ``model_index.json`` names the flavour,
    and the CLIP image processor is read from the cached JSON."""
    import huggingface_hub.constants as hc
    from helpers import hub_snapshot

    cache = tmp_path / "hub"
    monkeypatch.setattr(hc, "HF_HUB_CACHE", str(cache))
    for flavour, repo in (("i2v", "someone/sky-i2v"), (DF, "someone/sky-df")):
        tiny(flavour).save_pretrained(str(tmp_path / flavour))
        hub_snapshot(cache, repo, tmp_path / flavour)
        ref = tiny(flavour)
        # a hub id carries no stillguard.json: the working size is the caller's (no UMT5 here)
        b = SKY.from_pretrained(repo, prompt_embeds=ref.prompt_embeds, height=ref.height,
                                width=ref.width, num_frames=ref.num_frames)  # fmt: skip
        assert b.flavour == flavour and b.model_id == repo and b.is_real
        with torch.no_grad():
            torch.testing.assert_close(b.encode(image).image_latents,
                                       ref.encode(image).image_latents)  # fmt: skip


def test_a_clip_processor_folder_loads_without_tokenizer_files(tmp_path, image):
    """The published I2V folders name a ``CLIPProcessor`` (image processor + tokenizer): the
    image processor is read from its JSON alone, as a config-only build does."""
    folder = tmp_path / "m"
    tiny().save_pretrained(str(folder))
    index = json.loads((folder / "model_index.json").read_text())
    index["image_processor"] = ["transformers", "CLIPProcessor"]
    (folder / "model_index.json").write_text(json.dumps(index))
    assert not list((folder / "image_processor").glob("*token*"))
    b = SKY.from_pretrained(str(folder))
    assert type(b.pipe.image_processor).__name__ == "CLIPImageProcessorPil"
    with torch.no_grad():
        torch.testing.assert_close(
            b.clip_embeds(eight_bit(b, image)), tiny().clip_embeds(eight_bit(b, image))
        )


def test_unmodelled_designs_and_options_are_refused(tmp_path):
    tiny().save_pretrained(str(tmp_path / "m"))
    for bad, match in (({"ar_step": 5}, "ar_step"), ({"vae_tiling": True}, "no VAE tiling"),
                       ({"frames": 9}, "option"), ({"condition_grad": "some"}, "condition_grad"),
                       ({"num_frames": 8}, "1 \\+ a multiple of 4"),
                       ({"height": 40}, "multiples of 16")):  # fmt: skip
        with pytest.raises(InputError, match=match):
            SKY.from_pretrained(str(tmp_path / "m"), **bad)
    pipe = tiny(DF).pipe
    pipe.transformer.register_to_config(num_frame_per_block=2)
    try:
        with pytest.raises(InputError, match="block-causal"):
            SKY(pipe, model_id="x", prompt_embeds=torch.zeros(1, 512, 16),
                negative_prompt_embeds=None, settings=dict(height=32, width=48, num_frames=9),
                device=torch.device("cpu"), dtype=torch.float32)  # fmt: skip
    finally:
        pipe.transformer.register_to_config(num_frame_per_block=1)


def test_condition_grad_first_keeps_the_values(image, tmp_path):
    tiny().save_pretrained(str(tmp_path / "m"))
    a = SKY.from_pretrained(str(tmp_path / "m"), condition_grad="first")
    with torch.no_grad():
        torch.testing.assert_close(
            a.encode(image).image_latents, tiny().encode(image).image_latents
        )
    x = image.clone().requires_grad_(True)
    a.encode(x).image_latents.pow(2).mean().backward()
    assert x.grad.abs().sum() > 0


def test_prompt_is_embedded_once_with_umt5(tmp_path):
    from transformers import UMT5Config, UMT5EncoderModel

    folder = tmp_path / "with-umt5"
    tiny(DF).save_pretrained(str(folder))
    (folder / "prompt_embeds.safetensors").unlink()
    _, umt5 = save_tiny_text_encoder(folder, ["a", "cat", "runs"], UMT5EncoderModel, UMT5Config,
                                     register=True)  # fmt: skip
    a = SKY.from_pretrained(str(folder), prompt="a cat runs")
    assert a.pipe.text_encoder is None and a.pipe.tokenizer is None
    with torch.no_grad():
        expected = umt5(torch.tensor([[3, 4, 5]])).last_hidden_state
    assert a.prompt_embeds.shape == (1, 512, 16) and not a.prompt_embeds[:, 3:].any()
    torch.testing.assert_close(a.prompt_embeds[:, :3], expected)


@pytest.mark.parametrize("flavour", ["i2v", DF])
def test_capture_under_gradient_checkpointing(flavour, image):
    a = SKY.tiny(seed=0, flavour=flavour)
    t, noise = draw_inputs(a)
    layer, block = a.layer_names("attention")[-1], a.layer_names("hidden")[-1]
    check_capture_under_checkpointing(
        a, image, t, noise, layer, block, a.pipe.transformer.enable_gradient_checkpointing,
        lambda: dict(mode="sampled", max_queries=5, generator=torch.Generator().manual_seed(2)),
    )  # fmt: skip


@pytest.mark.parametrize("method", ["vid-freeze", "rollout-freeze", "anti-i2v"])
def test_methods_run_on_diffusion_forcing(method, image):
    opts = {"attention_mode": "pooled"} if method == "vid-freeze" else {}
    p = protect(image, tiny(DF), method, steps=2, eps=6 / 255, space="rgb", method_options=opts)
    assert p.delta.abs().max() > 0 and all(torch.isfinite(torch.tensor(p.losses)))


def test_diffusion_forcing_batch_of_two_is_two_singles():
    a = tiny(DF)
    g = torch.Generator().manual_seed(4)
    x = torch.rand(2, 3, 40, 56, generator=g)
    t = torch.tensor([700.0, 200.0])
    noise = torch.randn(a.latent_shape(2), generator=g)
    layer = a.layer_names("attention")[0]
    with torch.no_grad(), a.capture(attention=[layer], mode="pooled") as cap:
        both = a.denoise(x, t, noise).pred
    with torch.no_grad():
        one = [a.denoise(x[i : i + 1], t[i : i + 1], noise[i : i + 1]).pred for i in range(2)]
        roll = a.rollout(x, noise, steps=2)
        roll1 = [a.rollout(x[i : i + 1], noise[i : i + 1], steps=2) for i in range(2)]
    torch.testing.assert_close(both, torch.cat(one), rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(roll, torch.cat(roll1), rtol=1e-4, atol=1e-4)
    assert cap.attention[layer][0].shape[0] == 2


def test_generate_on_diffusion_forcing(image):
    a = tiny(DF)
    v0 = a.generate(image, seed=0, num_inference_steps=2)
    assert tuple(v0.shape) == (1, a.num_frames, 3, a.height, a.width)
    assert torch.equal(v0, a.generate(image, seed=0, num_inference_steps=2))
    assert not torch.equal(v0, a.generate(image, seed=1, num_inference_steps=2))


#: parameters of each published checkpoint's transformer (meta build of the shipped config, see
#: docs/research/new-targets.md §1) and its flavour
REAL = {
    "Skywork/SkyReels-V2-I2V-14B-540P-Diffusers": ("i2v", 16.395e9, 40),
    "Skywork/SkyReels-V2-I2V-1.3B-540P-Diffusers": ("i2v", 1.564e9, 30),
    "Skywork/SkyReels-V2-DF-14B-540P-Diffusers": (DF, 14.289e9, 40),
    "Skywork/SkyReels-V2-DF-1.3B-540P-Diffusers": (DF, 1.436e9, 30),
}


@pytest.mark.parametrize("hub_id", sorted(REAL))
def test_real_configs_build_on_meta(hub_id):
    flavour, params, blocks = REAL[hub_id]
    folder = real_config("skyreels-v2-i2v", hub_id)
    assert folder == config_folder(SKY.real_models[hub_id])
    assert real_config("skyreels-v2-i2v") == config_folder("skyreels-v2-i2v-14b-540p")
    a = SKY.from_config(folder, device="meta", dtype=torch.bfloat16)
    tr = a.pipe.transformer
    assert a.flavour == flavour and all(p.is_meta for p in tr.parameters())
    assert abs(sum(p.numel() for p in tr.parameters()) / params - 1) < 0.01
    assert len(a.layer_names("attention")) == blocks
    assert tr.blocks[0].attn1.to_q.weight.dtype == torch.bfloat16
    assert tr.blocks[0].scale_shift_table.dtype == torch.float32  # kept as diffusers keeps it
    _, f, _, h, w = a.latent_shape(1)
    assert (a.height, a.width, a.num_frames, f * (h // 2) * (w // 2)) == (544, 960, 97, 51_000)
    assert a.prompt_embeds.shape == (1, 512, 4096) and a.pipe.scheduler.config.flow_shift == 5.0
    if flavour == "i2v":  # the CLIPProcessor of the folder, built as its image processor
        proc = a.pipe.image_processor
        assert type(proc).__name__ == "CLIPImageProcessorPil" and proc.crop_size["height"] == 224
        assert a.pipe.image_encoder.config.hidden_size == 1280
    assert a.is_real is False and a.model_id == hub_id
