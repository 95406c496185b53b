"""CogVideoX-I2V beyond the shared contract: the shipped real configurations (built without
weights), ``from_config``, and CogVideoX1.5-5B-I2V (temporal patches, ``ofs``, padded latents).

Published figures checked here:
    * CogVideoX-5b-I2V transformer: 5.57e9 parameters (42 layers x 48 heads x 64, text 226 x 4096;
      hub config ``THUDM/CogVideoX-5b-I2V/transformer/config.json``; the model card says "5B").
    * CogVideoX1.5-5B-I2V: same width and depth plus the ``ofs`` embedding, temporal patch 2,
      default 768x1360 and 81 frames (hub config; ``inference/cli_demo.py`` RESOLUTION_MAP of
      THUDM/CogVideo).
"""

from __future__ import annotations

import json

import pytest
import torch
from helpers import draw_inputs

from stillguard.adapters import ADAPTERS, config_folder, real_config
from stillguard.errors import StillguardError

COG = ADAPTERS.get("cogvideox-i2v")
REAL = {
    # hub id: (folder, transformer parameters, latent shape at the default size)
    "THUDM/CogVideoX-5b-I2V": ("cogvideox-5b-i2v", 5.57e9, (1, 13, 16, 60, 90)),
    "THUDM/CogVideoX1.5-5B-I2V": ("cogvideox1.5-5b-i2v", 5.57e9, (1, 22, 16, 96, 170)),
}


def _count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _grad_ok(x: torch.Tensor) -> None:
    assert x.grad is not None and torch.isfinite(x.grad).all() and x.grad.abs().sum() > 0


@pytest.fixture(scope="module")
def cog15():
    return COG.tiny(variant="1.5")


# ---------------------------------------------------------------- shipped real configurations
@pytest.mark.parametrize("model", sorted(REAL))
def test_real_config_builds_on_meta_with_published_sizes(model):
    folder, n_params, shape = REAL[model]
    assert real_config("cogvideox-i2v", model) == config_folder(folder)
    a = COG.from_config(real_config("cogvideox-i2v", model), device="meta", dtype=torch.bfloat16)
    tr = a.pipe.transformer
    assert all(p.device.type == "meta" for p in a.pipe.vae.parameters())
    assert {p.dtype for p in tr.parameters()} == {torch.bfloat16}
    assert _count(tr) == pytest.approx(n_params, rel=5e-3)
    assert len(tr.transformer_blocks) == 42 and tr.config.num_attention_heads == 48
    assert tuple(a.prompt_embeds.shape) == (1, 226, 4096)  # T5-XXL, 226 tokens
    assert a.prompt_embeds.device.type == "meta"
    assert a.latent_shape(1) == shape
    assert not a.is_real and a.model_id == model
    settings = json.loads((config_folder(folder) / "stillguard.json").read_text())
    assert (a.height, a.width, a.num_frames) == (
        settings["height"],
        settings["width"],
        settings["num_frames"],
    )
    t5 = json.loads((config_folder(folder) / "text_encoder" / "config.json").read_text())
    assert t5["d_model"] == tr.config.text_embed_dim


def test_real_config_differences_between_versions():
    old = COG.from_config(real_config("cogvideox-i2v"), device="meta")
    new = COG.from_config(real_config("cogvideox-i2v", "THUDM/CogVideoX1.5-5B-I2V"), device="meta")
    assert old.pipe.transformer.config.patch_size_t is None
    assert old.pipe.transformer.config.ofs_embed_dim is None
    assert new.pipe.transformer.config.patch_size_t == 2
    assert new.pipe.transformer.config.ofs_embed_dim == 512
    assert not old.pipe.vae.config.invert_scale_latents and new.pipe.vae.config.invert_scale_latents
    assert (new.height, new.width, new.num_frames) == (768, 1360, 81)
    assert _count(old.pipe.vae) == _count(new.pipe.vae)  # the same VAE architecture


def test_real_config_errors_name_the_choices():
    assert COG.default_model in COG.real_models
    with pytest.raises(StillguardError, match="THUDM/CogVideoX-5b-I2V"):
        real_config("cogvideox-i2v", "THUDM/CogVideoX-2b")
    with pytest.raises(StillguardError, match="did you mean|no shipped"):
        config_folder("cogvideox-5b-i2")
    with pytest.raises(StillguardError, match="guidance_scale"):
        COG.from_config(real_config("cogvideox-i2v"), device="meta", guidance=3.0)


def test_shipped_configs_cite_their_source_and_diffusers_ignores_it():
    from diffusers import CogVideoXTransformer3DModel

    for folder, _, _ in REAL.values():
        files = sorted(config_folder(folder).rglob("*.json"))
        assert len(files) >= 5
        for file in files:
            assert json.loads(file.read_text())["_source"].startswith("https://"), file
    cfg = json.loads(
        (config_folder("cogvideox-5b-i2v") / "transformer" / "config.json").read_text()
    )
    init, _unused = CogVideoXTransformer3DModel.extract_init_dict(cfg)[:2]
    assert "_source" not in init and init["num_layers"] == 42


def test_real_config_builds_under_fake_tensor_mode():
    from torch._subclasses.fake_tensor import FakeTensor, FakeTensorMode

    folder = real_config("cogvideox-i2v", "THUDM/CogVideoX1.5-5B-I2V")
    with FakeTensorMode():
        a = COG.from_config(folder, dtype=torch.bfloat16)
        params = list(a.pipe.transformer.parameters())
        assert all(isinstance(p, FakeTensor) for p in params)
        assert isinstance(a.prompt_embeds, FakeTensor)
    assert sum(p.numel() for p in params) == pytest.approx(5.57e9, rel=5e-3)
    # the scheduler stays real: it holds no weights and its set-up needs real numbers
    assert not isinstance(a.pipe.scheduler.alphas_cumprod, FakeTensor)


def test_real_size_forward_runs_on_meta():
    """The planner's path: a real-size 1.5 denoise with pooled capture, nothing computed."""
    folder = real_config("cogvideox-i2v", "THUDM/CogVideoX1.5-5B-I2V")
    a = COG.from_config(folder, device="meta", dtype=torch.bfloat16)
    t = a.sample_timesteps(1, torch.Generator().manual_seed(0))
    noise = torch.empty(a.latent_shape(1), device="meta")
    layer = a.layer_names("attention")[-1]
    with torch.no_grad(), a.capture(attention=[layer], mode="pooled") as cap:
        out = a.denoise(torch.empty(1, 3, 720, 1280, device="meta"), t, noise)
    assert tuple(out.pred.shape) == (1, 22, 16, 96, 170) and out.pred.device.type == "meta"
    # 22 latent frames in token frames of 2
    assert tuple(cap.attention[layer][0].shape) == (1, 48, 11, 11)


def test_from_config_random_weights_are_seeded(cog15, tmp_path, image):
    cog15.save_pretrained(str(tmp_path / "m"))
    a = COG.from_config(tmp_path / "m", seed=3)
    b = COG.from_config(tmp_path / "m", seed=3)
    c = COG.from_config(tmp_path / "m", seed=4)
    assert not a.is_real and a.pipe.transformer.config.patch_size_t == 2
    assert tuple(a.prompt_embeds.shape) == (1, 4, 16) and not a.prompt_embeds.any()
    t, noise = draw_inputs(a)
    with torch.no_grad():
        pa, pb, pc = (m.denoise(image, t, noise).pred for m in (a, b, c))
    assert torch.equal(pa, pb) and not torch.equal(pa, pc)


# ---------------------------------------------------------------- CogVideoX1.5 on the tiny model
def test_15_latents_are_padded_as_the_pipeline_pads(cog15, image):
    a = cog15
    # 9 frames -> 3 latent frames -> one extra front frame for temporal patches of 2
    assert a.latent_shape(1) == (1, 4, 4, 8, 8)
    cond = a.encode(image)
    assert tuple(cond.image_latents.shape) == a.latent_shape(1)
    sf = a.pipe.vae.config.scaling_factor
    torch.testing.assert_close(cond.image_latents[:, 0], cond.first_latent / sf)  # inverted
    assert not cond.image_latents[:, 1:].any()
    t, noise = draw_inputs(a)
    with torch.no_grad():
        out = a.denoise(cond, t, noise)
    # the static video lives in the video latent space (decode divides by the factor)
    torch.testing.assert_close(out.z0[:, 2], cond.first_latent * sf)
    assert all(tuple(v.shape) == a.latent_shape(1) for v in (out.pred, out.x0, out.target))


def test_15_encode_matches_pipeline(cog15, image, monkeypatch):
    """``__call__`` pads ``num_frames`` first, then ``prepare_latents`` builds the image latents."""
    import diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video as mod

    a = cog15
    orig = mod.retrieve_latents
    monkeypatch.setattr(mod, "retrieve_latents", lambda out, gen=None: orig(out, gen, "argmax"))
    pre = a.pipe.video_processor.preprocess(a.prepare(image), height=a.height, width=a.width)
    frames = a.num_frames + 1 * a.pipe.vae_scale_factor_temporal  # one extra latent frame
    with torch.no_grad():
        noise, ref = a.pipe.prepare_latents(
            pre, 1, 4, frames, a.height, a.width, torch.float32, a.device, None, None
        )
        ours = a.encode(image).image_latents
    assert tuple(noise.shape) == tuple(ours.shape) == a.latent_shape(1)
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)


def test_15_gradients_reach_the_image(cog15, image):
    a = cog15
    t, noise = draw_inputs(a)
    x = image.clone().requires_grad_(True)
    a.encode(x).image_latents.pow(2).mean().backward()
    _grad_ok(x)
    x = image.clone().requires_grad_(True)
    out = a.denoise(x, t, noise)
    torch.nn.functional.mse_loss(out.pred, out.target).backward()
    _grad_ok(x)
    x = image.clone().requires_grad_(True)
    layer = a.layer_names("attention")[-1]
    with a.capture(attention=[layer]) as cap:
        a.denoise(x, t, noise)
    probs = cap.attention[layer][0]
    # 4 latent frames in token frames of 2; 64/8/2 = 4x4 tokens per frame; 4 text tokens
    assert cap.layout[layer] == {"text": 4, "frames": 2, "per_frame": 16}
    assert probs.shape[-1] == 4 + 2 * 16
    (probs[..., 0] - 1).pow(2).mean().backward()
    _grad_ok(x)
    with torch.no_grad(), a.capture(attention=[layer], mode="pooled") as cap:
        a.denoise(image, t, noise)
    assert cap.attention[layer][0].shape[-2:] == (2, 2)


def test_15_rollout_decode_and_video_latents(cog15, image):
    a = cog15
    _, noise = draw_inputs(a)
    x = image.clone().requires_grad_(True)
    lat = a.rollout(x, noise, steps=2)
    assert tuple(lat.shape) == a.latent_shape(1)
    lat.pow(2).mean().backward()
    _grad_ok(x)
    with torch.no_grad():
        video = a.decode(lat)
    assert tuple(video.shape) == (1, a.num_frames, 3, a.height, a.width)  # padding dropped
    z0 = a.encode_video(video)
    assert tuple(z0.shape) == a.latent_shape(1)
    assert torch.equal(z0[:, 0], z0[:, 1])  # the extra front frame repeats the first
    t, noise = draw_inputs(a, 1)
    with torch.no_grad():
        assert a.denoise(image, t, noise, z0=z0).pred.shape == z0.shape
    with pytest.raises(StillguardError, match="encode_video"):
        a.denoise(image, t, noise[:, :3], z0=z0[:, :3])


@pytest.mark.parametrize("variant", ["1.0", "1.5"])
def test_rollout_matches_the_pipeline(variant, cog15, tiny_cog, image, monkeypatch):
    """Same noise, posterior mode: our DDIM rollout (CFG; for 1.5 ofs and RoPE over padded frames)
    gives the pipeline's own final latents (``output_type="latent"`` keeps the padding frame)."""
    import diffusers.pipelines.cogvideo.pipeline_cogvideox_image2video as mod

    a = cog15 if variant == "1.5" else tiny_cog
    orig = mod.retrieve_latents
    monkeypatch.setattr(mod, "retrieve_latents", lambda out, gen=None: orig(out, gen, "argmax"))
    _, noise = draw_inputs(a, 2)
    x = a.prepare(image)
    with torch.no_grad():
        ours = a.rollout(x, noise, steps=3)
        ref = a.pipe(
            image=x,
            prompt_embeds=a.prompt_embeds,
            negative_prompt_embeds=a.negative_prompt_embeds,
            height=a.height,
            width=a.width,
            num_frames=a.num_frames,
            num_inference_steps=3,
            guidance_scale=a.guidance_scale,
            latents=noise.clone(),
            output_type="latent",
        ).frames
    assert ref.shape == ours.shape == a.latent_shape(1)
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-4)


def test_15_generate_is_deterministic_and_round_trips(cog15, image, tmp_path):
    a = cog15
    v0 = a.generate(image, seed=0, num_inference_steps=2)
    assert tuple(v0.shape) == (1, a.num_frames, 3, a.height, a.width)
    assert torch.equal(v0, a.generate(image, seed=0, num_inference_steps=2))
    assert not torch.equal(v0, a.generate(image, seed=1, num_inference_steps=2))
    a.save_pretrained(str(tmp_path / "m"))
    b = COG.from_pretrained(str(tmp_path / "m"))
    assert b.pipe.transformer.config.patch_size_t == 2 and b.is_real
    t, noise = draw_inputs(a)
    with torch.no_grad():
        assert torch.equal(a.denoise(image, t, noise).pred, b.denoise(image, t, noise).pred)
    assert torch.equal(v0, b.generate(image, seed=0, num_inference_steps=2))


def test_tiny_variant_is_checked():
    with pytest.raises(StillguardError, match="1.5"):
        COG.tiny(variant="2.0")
