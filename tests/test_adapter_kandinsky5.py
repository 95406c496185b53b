"""Kandinsky-5-specific checks of ``kandinsky5-i2v`` beyond the registry-wide contract: the
pipeline's own latent preparation (redone with gradient) and sampler, the posterior draws, the
zero ``visual_cond`` and the global timestep, attention maps that reproduce the module's output,
the refusals, the prompt path and the shipped real configuration (built on the meta device)."""

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
)

from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters.official import config_folder
from stillguard.errors import InputError, ModelError

K5 = ADAPTERS.get("kandinsky5-i2v")


@pytest.fixture(scope="module")
def a():
    return K5.tiny(seed=0)


def _text(a) -> dict:
    out = {}
    for pre in ("", "negative_"):
        qwen, clip = a._text(bool(pre))
        cu = torch.tensor([0, qwen.shape[1]], dtype=torch.int32)
        out.update({f"{pre}prompt_embeds_qwen": qwen, f"{pre}prompt_embeds_clip": clip,
                    f"{pre}prompt_cu_seqlens": cu})  # fmt: skip
    return out


def test_encode_is_the_pipelines_latent_preparation_with_gradient(a, image):
    """``prepare_latents`` (run under no_grad by the pipeline): noise from the generator, then the
    posterior sample × scaling_factor over frame 0, ``visual_cond`` all zeros, mask 1 on frame 0.
    The same generator state gives exactly our latent, and ours carries the gradient."""
    x8 = eight_bit(a, image)
    with torch.no_grad():
        ref = a.pipe.prepare_latents(
            as_pil(x8), 1, 16, a.height, a.width, a.num_frames, torch.float32, a.device,
            torch.Generator().manual_seed(11),
        )  # fmt: skip
    g = torch.Generator().manual_seed(11)
    noise = torch.randn(1, *ref.shape[1:-1], 16, generator=g)  # the pipeline draws it first
    x = x8.clone().requires_grad_(True)
    cond = a.encode(x, generator=g)
    assert ref.shape[-1] == 33 and not ref[..., 16:32].any()  # the photo is not in visual_cond
    assert ref[:, :1, ..., 32].eq(1).all() and not ref[:, 1:, ..., 32].any()
    torch.testing.assert_close(cond.image_latents[:, 0].permute(0, 2, 3, 1), ref[:, 0, ..., :16],
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert torch.equal(ref[:, 1:, ..., :16], noise[:, 1:]) and not cond.image_latents[:, 1:].any()
    cond.image_latents.pow(2).sum().backward()
    assert x.grad.abs().sum() > 0


def test_posterior_draws_are_keyed_and_average_to_the_mode(a, image, tmp_path):
    """Without a generator each image draws from its own key: the same image, the same draw; a
    new noise video (a new PGD step inside denoise), a new draw; many draws average to the mode."""
    with torch.no_grad():
        c1, c2 = a.encode(image).first_latent, a.encode(image).first_latent
        other = a.encode(image.flip(-1)).first_latent
        _, n1 = draw_inputs(a, seed=1)
        _, n2 = draw_inputs(a, seed=2)
        d1 = a._cond(image, n1).first_latent
        d2 = a._cond(image, n2).first_latent
        mode = a.pipe.vae.encode(a.prepare(image).unsqueeze(2) * 2 - 1).latent_dist.mode()[:, :, 0]
        draws = torch.stack([a.encode(image, generator=torch.Generator().manual_seed(s))
                             .first_latent for s in range(64)])  # fmt: skip
    assert torch.equal(c1, c2) and not torch.equal(c1, other) and not torch.equal(d1, d2)
    spread = (draws - mode).std(0).mean()
    assert (draws.mean(0) - mode).abs().mean() < 0.35 * spread  # ~1/8 expected for 64 draws
    a.save_pretrained(str(tmp_path / "m"))
    b = K5.from_pretrained(str(tmp_path / "m"), condition_sample="mode")
    with torch.no_grad():
        torch.testing.assert_close(b.encode(image).first_latent, mode, rtol=1e-5, atol=1e-5)
    assert b.describe()["condition_sample"] == "mode"


def test_denoise_uses_one_global_timestep_and_keeps_frame_0(a, image):
    with torch.no_grad():
        cond = a.encode(image)
    seen, t, noise, out = denoise_seen(a, cond)
    assert seen["timestep"].shape == (1,) and torch.equal(seen["timestep"], t)
    hs = seen["hidden_states"]  # channels-last: latents | visual_cond (zeros) | frame-0 mask
    assert hs.shape[-1] == 33 and not hs[..., 16:32].any() and hs[:, 0, ..., 32].eq(1).all()
    photo = cond.image_latents[:, :1]
    torch.testing.assert_close(hs[:, :1, ..., :16].permute(0, 1, 4, 2, 3), photo)
    assert torch.equal(out.x0[:, :1], photo) and torch.equal(out.noisy[:, :1], photo)
    assert torch.equal(out.target[:, :1], out.pred[:, :1])  # never stepped: out of the loss
    sigma = float(t) / 1000
    torch.testing.assert_close(out.noisy[:, 1:], (1 - sigma) * out.z0[:, 1:] + sigma * noise[:, 1:])


@pytest.mark.parametrize("steps", [2, 5])
def test_rollout_is_the_pipelines_sampler(a, image, steps):
    """From the same noise and frame-0 latent, the differentiable rollout is the pipeline's latent
    output: Euler on frames 1+, CFG as two passes, then ``normalize_first_frame``."""
    x8 = eight_bit(a, image)
    _, noise = draw_inputs(a, seed=5)
    with torch.no_grad():
        cond = a.encode(x8, generator=torch.Generator().manual_seed(1))
        ours = a.rollout(cond, noise, steps)
        lat = torch.cat([cond.image_latents[:, :1], noise[:, 1:]], 1).permute(0, 1, 3, 4, 2)
        mask = torch.zeros(*lat.shape[:-1], 1)
        mask[:, 0] = 1
        full = torch.cat([lat, torch.zeros_like(lat), mask], -1)
        ref = a.pipe(
            image=as_pil(x8), height=a.height, width=a.width, num_frames=a.num_frames,
            num_inference_steps=steps, guidance_scale=a.guidance_scale, latents=full,
            output_type="latent", **_text(a),
        ).frames.permute(0, 1, 4, 2, 3)  # fmt: skip
        plain = a.rollout(cond, noise, steps)[:, 4:]
    torch.testing.assert_close(ours, ref, rtol=1e-4, atol=1e-5)
    torch.testing.assert_close(plain, ref[:, 4:], rtol=1e-4, atol=1e-5)  # untouched after frame 4
    x = image.clone().requires_grad_(True)
    a.rollout(x, noise, 2)[:, 1:].pow(2).mean().backward()
    assert x.grad.abs().sum() > 0


def test_normalize_first_frames_is_per_video(a):
    g = torch.Generator().manual_seed(0)
    lat = torch.randn(2, 6, 16, 4, 6, generator=g) * torch.tensor([1.0, 3.0]).view(2, 1, 1, 1, 1)
    both = a.normalize_first_frames(lat)
    one = torch.cat([a.normalize_first_frames(lat[i : i + 1]) for i in range(2)])
    torch.testing.assert_close(both, one)
    assert torch.equal(both[:, 4:], lat[:, 4:]) and not torch.allclose(both[:, :4], lat[:, :4])
    assert torch.equal(a.normalize_first_frames(lat[:, :4]), lat[:, :4])  # < 5 frames: unchanged


def test_exact_maps_reproduce_the_attention_output(a, image):
    """softmax(QKᵀ/√d)·V through ``out_layer`` equals what ``self_attention`` returned: q, k, the
    per-head norm, the rotary embedding with diffusers' bfloat16 rounding, the layout."""
    layer = a.layer_names("attention")[-1]
    mod = a.pipe.transformer.get_submodule(layer)
    probs, lay, seen_in, seen_out = exact_map_and_io(a, image, layer)
    assert lay == {"text": 0, "frames": 5, "per_frame": 6} and probs.shape[-1] == 30
    v = mod.to_value(seen_in).unflatten(2, (mod.num_heads, -1)).transpose(1, 2)
    out = mod.out_layer((probs @ v).transpose(1, 2).flatten(2))
    # SDPA sees the same bfloat16-rounded q and k; the sums differ only in float32 rounding
    torch.testing.assert_close(out, seen_out, rtol=1e-4, atol=1e-5)


def test_capture_under_gradient_checkpointing(image):
    a = K5.tiny(seed=0)
    t, noise = draw_inputs(a)
    layer, block = a.layer_names("attention")[-1], a.layer_names("hidden")[-1]
    check_capture_under_checkpointing(
        a, image, t, noise, layer, block, a.pipe.transformer.enable_gradient_checkpointing,
        lambda: dict(mode="sampled", max_queries=5, generator=torch.Generator().manual_seed(2)),
    )  # fmt: skip


def test_refusals(a, tmp_path):
    a.save_pretrained(str(tmp_path / "m"))
    for bad, match in (({"num_frames": 9}, "NaN"), ({"num_frames": 18}, "1 \\+ a multiple of 4"),
                       ({"height": 40}, "multiples of 16"), ({"condition_sample": "x"}, "sample"),
                       ({"frames": 9}, "unknown")):  # fmt: skip
        with pytest.raises(InputError, match=match):
            K5.from_pretrained(str(tmp_path / "m"), **bad)
    cfg = json.loads((tmp_path / "m" / "transformer" / "config.json").read_text())
    cfg["attention_type"] = "nabla"
    (tmp_path / "m" / "transformer" / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(InputError, match="nabla"):
        K5.from_pretrained(str(tmp_path / "m"))


def test_flow_shift_option_and_config_build(a, tmp_path, image):
    a.save_pretrained(str(tmp_path / "m"))
    b = K5.from_pretrained(str(tmp_path / "m"), flow_shift=5.0)
    assert b.pipe.scheduler.config.shift == 5.0 and a.pipe.scheduler.config.shift == 10.0
    g = torch.Generator().manual_seed(0)
    assert (
        b.sample_timesteps(64, g) < a.sample_timesteps(64, torch.Generator().manual_seed(0))
    ).all()
    for f in (tmp_path / "m").rglob("*.safetensors"):
        f.unlink()
    c = K5.from_config(tmp_path / "m", seed=1)
    assert c.random_weights and not c.is_real
    assert c.prompt["prompt_embeds_qwen"].shape == (1, 512, 32) and c.flow_shift == 10.0
    t, noise = draw_inputs(c)
    assert c.denoise(image, t, noise).pred.shape == c.latent_shape(1)


def test_prompt_path(a, tmp_path, monkeypatch):
    """Without text encoders a prompt cannot be embedded (one clear error); with them, the
    pipeline's own ``encode_prompt`` runs once per prompt (the negative one the pipeline's
    default), and the encoders are dropped afterwards."""
    from diffusers import Kandinsky5I2VPipeline
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import CLIPTextConfig, CLIPTextModel, PreTrainedTokenizerFast

    plain = tmp_path / "plain"
    a.save_pretrained(str(plain))
    with pytest.raises(ModelError, match="text_encoder"):
        K5.from_pretrained(str(plain), prompt="a cat")
    folder = tmp_path / "with-encoders"
    a.save_pretrained(str(folder))
    enc = CLIPTextModel(CLIPTextConfig(vocab_size=10, hidden_size=8, intermediate_size=16,
                                       num_hidden_layers=1, num_attention_heads=2))  # fmt: skip
    index = json.loads((folder / "model_index.json").read_text())
    raw = Tokenizer(models.WordLevel({"<unk>": 0, "a": 1, "cat": 2}, unk_token="<unk>"))
    raw.pre_tokenizer = pre_tokenizers.Whitespace()
    tok = PreTrainedTokenizerFast(tokenizer_object=raw, unk_token="<unk>")
    for name, tok_name in (("text_encoder", "tokenizer"), ("text_encoder_2", "tokenizer_2")):
        enc.save_pretrained(str(folder / name))
        tok.save_pretrained(str(folder / tok_name))
        index[name] = ["transformers", "CLIPTextModel"]
        index[tok_name] = ["transformers", "PreTrainedTokenizerFast"]
    (folder / "model_index.json").write_text(json.dumps(index))
    calls = []

    def encode_prompt(self, prompt, **kw):
        calls.append((prompt, self.text_encoder is not None, self.tokenizer_2 is not None))
        n = len(calls)
        return torch.full((1, 3 + n, 32), float(n)), torch.full((1, 16), float(n)), None

    monkeypatch.setattr(Kandinsky5I2VPipeline, "encode_prompt", encode_prompt)
    b = K5.from_pretrained(str(folder), prompt="a cat")
    assert [c[0] for c in calls] == ["a cat", _negative()]
    assert all(c[1] and c[2] for c in calls)  # the folder's encoders were there while embedding
    assert b.pipe.text_encoder is None and b.pipe.text_encoder_2 is None
    assert b.prompt["prompt_embeds_qwen"].shape == (1, 4, 32)
    assert b.prompt["negative_prompt_embeds_qwen"].shape == (1, 5, 32)
    assert b.prompt["negative_prompt_embeds_clip"].eq(2).all()


def _negative() -> str:
    from stillguard.adapters.kandinsky5.load import NEGATIVE_PROMPT

    return NEGATIVE_PROMPT


def test_negative_prompt_is_the_pipelines_default():
    """The default negative prompt is the string ``Kandinsky5I2VPipeline.__call__`` encodes."""
    import inspect

    from diffusers import Kandinsky5I2VPipeline

    assert f'negative_prompt = "{_negative()}"' in inspect.getsource(Kandinsky5I2VPipeline.__call__)


def test_real_config_builds_on_meta():
    hub = "kandinskylab/Kandinsky-5.0-I2V-Pro-sft-5s-Diffusers"
    folder = real_config("kandinsky5-i2v")
    assert folder == config_folder(K5.real_models[hub]) and K5.default_model == hub
    a = K5.from_config(folder, device="meta", dtype=torch.bfloat16)
    tr = a.pipe.transformer
    assert all(p.is_meta for p in tr.parameters())
    # Kandinsky 5.0 Video Pro: "19B"; the meta build of the official config counts 19.311 B
    assert abs(sum(p.numel() for p in tr.parameters()) / 19.311e9 - 1) < 0.01
    assert len(a.layer_names("attention")) == 60 and tr.visual_cond
    _, f, c, h, w = a.latent_shape(1)
    assert (a.height, a.width, a.num_frames, c) == (512, 768, 121, 16)
    assert f * (h // 2) * (w // 2) == 47_616
    assert a.prompt["prompt_embeds_qwen"].shape == (1, 512, 3584)
    assert a.prompt["prompt_embeds_clip"].shape == (1, 768)
    assert a.pipe.scheduler.config.shift == 10.0 and a.condition_sample == "sample"
    assert a.model_id == hub and not a.is_real
