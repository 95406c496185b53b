"""ltx-i2v specifics: the pipeline's own conditioning and sampler, the posterior option, real config."""

from __future__ import annotations

import pytest
import torch
from helpers import denoise_seen, draw_inputs

from stillguard.adapters import ADAPTERS, real_config
from stillguard.adapters._shared.folders import PROMPT_FILE
from stillguard.errors import InputError, ModelError

NAME = "ltx-i2v"


def _tiny(**settings):
    a = ADAPTERS.get(NAME).tiny()
    if settings:
        a = type(a)(
            a.pipe,
            model_id="tiny",
            prompt=a.prompt,
            device=a.device,
            dtype=a.dtype,
            settings={**a.settings(), **settings},
        )
    return a


def _pipeline_frame0(a, image, generator):
    """The pipeline's prepare_latents: frame 0 of its packed latents, unpacked to (B, C, h, w)."""
    _, f, c, h, w = a.latent_shape(1)
    pre = a.pipe.video_processor.preprocess(a.prepare(image), height=a.height, width=a.width)
    lat, mask = a.pipe.prepare_latents(
        pre, 1, c, a.height, a.width, a.num_frames, torch.float32, a.device, generator
    )
    assert torch.equal(mask.view(f, h * w)[0], torch.ones(h * w))  # frame 0 is the condition
    return lat[:, : h * w].transpose(1, 2).reshape(1, c, h, w)


def test_encode_samples_the_posterior_like_the_pipeline(tiny_adapter, image):
    a = tiny_adapter(NAME)
    assert a.condition_sample == "sample"
    with torch.no_grad():
        ref = _pipeline_frame0(a, image, torch.Generator().manual_seed(3))
        ours = a.encode(image, generator=torch.Generator().manual_seed(3)).image_latents[:, 0]
        other = a.encode(image, generator=torch.Generator().manual_seed(4)).image_latents[:, 0]
    torch.testing.assert_close(ours, ref, rtol=1e-5, atol=1e-6)
    assert not torch.equal(ours, other)  # a real draw, not the mode


def test_mode_option_is_deterministic_and_keyed_draws_repeat(image):
    a = _tiny(condition_sample="mode")
    with torch.no_grad():
        c1 = a.encode(image, generator=torch.Generator().manual_seed(1)).image_latents
        c2 = a.encode(image, generator=torch.Generator().manual_seed(2)).image_latents
    assert torch.equal(c1, c2)
    s = _tiny()
    t, noise = draw_inputs(s)
    with torch.no_grad():
        first, again = s.denoise(image, t, noise), s.denoise(image, t, noise)
        moved = s.denoise(image, t, torch.randn_like(noise))
    assert torch.equal(first.noisy, again.noisy)  # keyed by (image, noise): reproducible
    assert not torch.equal(first.noisy[:, 0], moved.noisy[:, 0])  # a new noise draw, a new sample
    with pytest.raises(InputError, match="condition_sample"):
        _tiny(condition_sample="median")


def test_timestep_is_zero_on_the_condition_tokens(tiny_adapter, image):
    a = tiny_adapter(NAME)
    seen, t, noise, out = denoise_seen(a, image)
    _, f, _, h, w = a.latent_shape(1)
    steps = seen["timestep"]
    assert steps.shape == (1, f * h * w)
    assert (steps[0, : h * w] == 0).all() and torch.allclose(steps[0, h * w :], t)
    assert torch.equal(out.target[:, 0], out.pred[:, 0])  # frame 0 is out of the loss
    sigma = t / 1000
    torch.testing.assert_close(out.noisy[:, 1:], (1 - sigma) * out.z0[:, 1:] + sigma * noise[:, 1:])


def test_rollout_equals_the_pipelines_sampler(image):
    a = _tiny(condition_sample="mode")
    _, noise = draw_inputs(a, 5)
    x = image.clone().requires_grad_(True)
    cond = a.encode(x)
    _, f, c, h, w = noise.shape
    start = torch.cat([cond.image_latents[:, :1].detach(), noise[:, 1:]], 1)
    packed = start.permute(0, 1, 3, 4, 2).reshape(1, f * h * w, c)
    with torch.no_grad():
        ref = a.pipe(
            latents=packed,
            height=a.height,
            width=a.width,
            num_frames=a.num_frames,
            num_inference_steps=2,
            guidance_scale=a.guidance_scale,
            output_type="latent",
            frame_rate=a.frame_rate,
            **_prompt(a),
        ).frames
    ours = a.rollout(cond, noise, 2)
    torch.testing.assert_close(
        ours.permute(0, 1, 3, 4, 2).reshape(1, -1, c), ref, rtol=1e-4, atol=1e-5
    )
    assert torch.equal(ours[:, 0], cond.image_latents[:, 0])
    ours[:, 1:].pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0


def _prompt(a):
    p = a.prompt
    return dict(
        prompt_embeds=p["prompt_embeds"],
        prompt_attention_mask=p["prompt_attention_mask"],
        negative_prompt_embeds=p["negative_prompt_embeds"],
        negative_prompt_attention_mask=p["negative_prompt_attention_mask"],
    )


def test_condition_noise_follows_sigma_squared(image):
    a = _tiny(condition_sample="mode", condition_noise=0.15)
    t, noise = draw_inputs(a)
    with torch.no_grad():
        out = a.denoise(image, torch.tensor([500.0]), noise)
        low = a.denoise(image, torch.tensor([100.0]), noise)
        clean = a.encode(image).image_latents[:, 0]
    # frame 0 = c + 0.15·σ²·ε: the deviation scales with σ² (0.25 vs 0.01)
    dev, dev_low = (out.noisy[:, 0] - clean).std(), (low.noisy[:, 0] - clean).std()
    assert 0 < dev_low < dev and float(dev / dev_low) == pytest.approx(25, rel=0.3)


def test_folder_without_prompt_or_text_encoder_is_refused(tiny_adapter, tmp_path):
    a = tiny_adapter(NAME)
    a.save_pretrained(str(tmp_path / "m"))
    (tmp_path / "m" / PROMPT_FILE).unlink()
    with pytest.raises(ModelError, match="text encoder"):
        ADAPTERS.get(NAME).from_pretrained(str(tmp_path / "m"))
    b = ADAPTERS.get(NAME).from_pretrained(
        str(tmp_path / "m"), prompt_embeds=a.prompt["prompt_embeds"], condition_noise=0.1
    )
    assert b.condition_noise == 0.1 and b.prompt["prompt_attention_mask"].all()
    with pytest.raises(InputError, match="unknown ltx-i2v option"):
        ADAPTERS.get(NAME).from_pretrained(str(tmp_path / "m"), num_frame=5)


@pytest.mark.parametrize(
    "model, low, high, blocks",
    [
        # LTX-Video 0.9.0 is published as the "2B" model (Lightricks/LTX-Video model card,
        # checkpoint ltx-video-2b-v0.9.safetensors); the diffusers transformer counts 1.92e9
        ("Lightricks/LTX-Video", 1.8e9, 2.1e9, 28),
        # LTX-Video 0.9.7 is published as "13B" (ltxv-13b-0.9.7-dev/-distilled checkpoints);
        # the diffusers transformer counts 13.04e9
        ("Lightricks/LTX-Video-0.9.7-distilled", 12.5e9, 13.5e9, 48),
    ],
)
def test_real_configs_on_meta_match_published_figures(model, low, high, blocks):
    cls = ADAPTERS.get(NAME)
    assert cls.default_model in cls.real_models
    a = cls.from_config(real_config(NAME, model), device="meta")
    n = sum(p.numel() for p in a.pipe.transformer.parameters())
    assert low < n < high
    assert len(a.layer_names("attention")) == blocks
    # 512x704x161 -> 21 x 16 x 22 = 7,392 video tokens (32x spatial, 8x temporal, patch 1)
    assert a.latent_shape(1) == (1, 21, 128, 16, 22)
    assert a.prompt["prompt_embeds"].shape == (1, 128, 4096)
    assert a.pipe.transformer.proj_in.weight.device.type == "meta"
    assert (a.height, a.width, a.num_frames, a.num_inference_steps) == (512, 704, 161, 50)
