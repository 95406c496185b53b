"""Open-Sora 1.2 (``open-sora-1.2``): the official architecture without weights, and the tiny build.

Key manifests (``tests/data/official_keys/open_sora_{stdit3,vae}.txt``) were derived by running
the *official* module definitions of hpcaitech/Open-Sora tag v1.2.0 (``STDiT3_XL_2`` of
``opensora/models/stdit/stdit3.py`` with the v1.2 inference arguments; ``OpenSoraVAE_V1_2`` of
``opensora/models/vae/vae.py`` with ``VAE_Temporal_SD``, its 2D VAE built as diffusers'
``AutoencoderKL`` from the SDXL-VAE config) on the meta device and writing ``state_dict()`` out,
with only the distributed/registry/xformers/torchvision imports stubbed. No checkpoint was read.

Published figures: README of v1.2.0, model table: Diffusion "1.1B", VAE "384M";
``docs/report_03.md``: the 3D VAE "contains 300M parameters. Along with 83M 2D VAE, the total
parameters of the video compression network is 384M"; Hugging Face file list of
``hpcai-tech/OpenSora-STDiT-v3``: ``model.safetensors`` 4.84 GB. The architecture has 1.208B
parameters: the README's "1.1B" is loose, while the 4.84 GB file is 4 bytes per parameter plus the
300x4096 null-caption buffer, to the last rounded digit.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
from helpers import check_capture_under_checkpointing, save_tiny_text_encoder

from stillguard.adapters import ADAPTERS, official_model, real_config
from stillguard.errors import CapabilityError, InputError, ModelError

NAME = "open-sora-1.2"
DATA = Path(__file__).parent / "data" / "official_keys"


def _manifest(part: str) -> list[tuple[str, list[int]]]:
    rows = []
    for line in (DATA / f"open_sora_{part}.txt").read_text().splitlines():
        if line and not line.startswith("#"):
            key, shape = line.split(" ", 1)
            rows.append((key, [int(s) for s in shape.strip("[]").split(",") if s.strip()]))
    return rows


def _params(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("part", ["stdit3", "vae"])
def test_official_keys_and_shapes_match_the_manifest(part):
    model = official_model(NAME, part)
    assert all(t.device.type == "meta" for t in model.state_dict().values())
    ours = [(k, list(v.shape)) for k, v in model.state_dict().items()]
    expected = _manifest(part)
    assert len(expected) > 500
    assert ours == expected  # same keys, shapes and order
    # strict loading of a state dict with exactly these keys and shapes succeeds ...
    state = {k: torch.empty(s, device="meta") for k, s in expected}
    model.load_state_dict(state, strict=True, assign=True)
    # ... and one missing key fails
    state.pop(expected[-1][0])
    with pytest.raises(RuntimeError, match="Missing"):
        official_model(NAME, part).load_state_dict(state, strict=True, assign=True)


def test_parameter_counts_against_published_figures():
    stdit = _params(official_model(NAME, "stdit3"))
    assert stdit == 1_207_643_972
    assert 1.1e9 <= stdit < 1.25e9  # README "1.1B"
    buffer = 300 * 4096  # y_embedding, the null caption, stored in the checkpoint
    assert round(4 * (stdit + buffer) / 1e9, 2) == 4.84  # HF: model.safetensors 4.84 GB
    vae = official_model(NAME, "vae")
    spatial, temporal = _params(vae.spatial_vae), _params(vae.temporal_vae)
    assert spatial == 83_653_863  # report_03 "83M 2D VAE" (the SD/SDXL VAE)
    assert abs(temporal - 300e6) / 300e6 < 0.05  # report_03 "300M"
    assert abs(_params(vae) - 384e6) / 384e6 < 0.03  # README / report_03 "384M"
    with pytest.raises(InputError, match="stdit3"):
        official_model(NAME, "unet")


def test_real_config_builds_on_meta_with_published_shapes():
    cls = ADAPTERS.get(NAME)
    a = cls.from_config(real_config(NAME), device="meta")
    assert _params(a.pipe.transformer) == _params(official_model(NAME, "stdit3"))
    assert (a.height, a.width, a.num_frames, a.num_inference_steps) == (240, 426, 51, 30)
    assert a.guidance_scale == 7.0 and a.fps == 24
    # 51 frames = 3 chunks of 17 -> 15 latent frames; 240x426 -> 30x53 latents
    assert a.latent_shape(1) == (1, 15, 4, 30, 53)
    assert tuple(a.prompt_embeds.shape) == (1, 300, 4096)
    assert a.pipe.transformer.config.depth == 28 and len(a.layer_names("attention-temporal")) == 28


def test_timestep_transform_formula():
    from stillguard.adapters.open_sora import rflow as RF

    cfg = RF.RFlowConfig()
    # 240x426, 51 frames: r = sqrt(240*426/512^2) * sqrt(51 // 17 * 5)
    r = (240 * 426 / 512**2) ** 0.5 * 15**0.5
    got = RF.timestep_transform(torch.tensor(500.0), 240, 426, 51, cfg)
    torch.testing.assert_close(got, torch.tensor(r * 0.5 / (1 + (r - 1) * 0.5) * 1000))
    ts = RF.sampling_timesteps(30, 240, 426, 51, cfg)
    assert len(ts) == 30 and float(ts[0]) == pytest.approx(1000)
    assert all(float(a) > float(b) for a, b in zip(ts, ts[1:], strict=False))
    # images are not shifted by length; 2..16 frames use n = 1 (the official formula gives 0)
    assert float(RF.timestep_transform(torch.tensor(500.0), 512, 512, 1, cfg)) == 500
    assert float(RF.timestep_transform(torch.tensor(500.0), 512, 512, 9, cfg)) == 500


def test_first_frame_conditioning_and_flow_target(tiny_adapter, image):
    a = tiny_adapter(NAME)
    g = torch.Generator().manual_seed(0)
    t, noise = a.sample_timesteps(1, g), torch.randn(a.latent_shape(1), generator=g)
    with torch.no_grad():
        cond = a.encode(image)
        out = a.denoise(cond, t, noise)
        z0 = torch.randn(a.latent_shape(1), generator=g)
        other = a.denoise(cond, t, noise, z0=z0)
    first = cond.image_latents[:, 0]
    torch.testing.assert_close(first, a.pipe.vae.normalise(cond.first_latent[:, :, None])[:, :, 0])
    assert torch.equal(out.noisy[:, 0], first) and torch.equal(other.noisy[:, 0], first)
    s = float(t) / 1000
    torch.testing.assert_close(other.noisy[:, 1:], (1 - s) * z0[:, 1:] + s * noise[:, 1:])
    torch.testing.assert_close(other.target, z0 - noise)
    # x0 from the target is z0 (rectified flow: x_t + s * (x0 - eps) = x0)
    torch.testing.assert_close(other.noisy[:, 1:] + s * other.target[:, 1:], z0[:, 1:])


def test_temporal_vae_convs_are_causal_and_one_image_is_one_latent_frame(tiny_adapter, image):
    """Causal convs see only past frames (GroupNorm still mixes time, as in v1.2); an image is
    encoded as 3 zero frames + itself -> one latent frame, like a 1-frame video."""
    from stillguard.adapters.open_sora.nets.vae_temporal import CausalConv3d

    torch.manual_seed(0)
    conv = CausalConv3d(2, 3, 3)
    x = torch.randn(1, 2, 6, 5, 5)
    y = x.clone()
    y[:, :, 4:] += 1
    assert torch.equal(conv(x)[:, :, :4], conv(y)[:, :, :4])
    assert not torch.equal(conv(x)[:, :, 4:], conv(y)[:, :, 4:])
    a = tiny_adapter(NAME)
    with torch.no_grad():
        cond = a.encode(image)
        z = a.encode_video(image[:, None])
    assert z.shape[1] == 1
    torch.testing.assert_close(z[:, 0], cond.image_latents[:, 0])
    video = torch.rand(1, a.num_frames, 3, a.height, a.width)
    assert tuple(a.encode_video(video).shape) == a.latent_shape(1)


def test_temporal_and_spatial_attention_maps(tiny_adapter, image):
    a = tiny_adapter(NAME)
    g = torch.Generator().manual_seed(0)
    t, noise = a.sample_timesteps(1, g), torch.randn(a.latent_shape(1), generator=g)
    b, f, _, h, w = a.latent_shape(1)
    s = (h // 2) * (w // 2)
    temporal, spatial = a.layer_names("attention-temporal"), a.layer_names("attention-spatial")
    assert temporal == ["temporal_blocks.0.attn", "temporal_blocks.1.attn"]
    with torch.no_grad(), a.capture(attention=temporal + spatial) as cap:
        a.denoise(image, t, noise)
    assert cap.attention[temporal[0]][0].shape == (b * s, 2, f, f)
    assert cap.attention[spatial[0]][0].shape == (b * f, 2, s, s)
    assert cap.layout[temporal[0]] == {"text": 0, "frames": f, "per_frame": 1}
    with torch.no_grad(), a.capture(attention=temporal, mode="pooled") as cap:
        a.denoise(image, t, noise)
    assert cap.attention[temporal[0]][0].shape == (b, 2, f, f)
    with pytest.raises(InputError, match="pooled"):
        with torch.no_grad(), a.capture(attention=spatial[:1], mode="pooled"):
            a.denoise(image, t, noise)
    with pytest.raises(CapabilityError, match="temporal"):
        a.layer_names("attention-joint")
    # Anti-I2V: one hidden layer per spatial+temporal pair
    assert a.layer_names("hidden") == ["temporal_blocks.0", "temporal_blocks.1"]


def test_rollout_keeps_the_photo_and_is_differentiable(tiny_adapter, image):
    a = tiny_adapter(NAME)
    x = image.clone().requires_grad_(True)
    noise = torch.randn(a.latent_shape(1), generator=torch.Generator().manual_seed(1))
    out = a.rollout(x, noise, steps=2)
    assert tuple(out.shape) == a.latent_shape(1)
    out[:, 1:].pow(2).mean().backward()
    assert x.grad is not None and x.grad.abs().sum() > 0
    with torch.no_grad():
        torch.testing.assert_close(out[:, 0], a.encode(image).image_latents[:, 0])
        assert torch.equal(a.rollout(image, noise, 2), a.rollout(image, noise, 2))


def test_loading_refuses_hub_ids_and_foreign_weights(tiny_adapter, tmp_path):
    cls = ADAPTERS.get(NAME)
    with pytest.raises(ModelError, match="local folder"):
        cls.from_pretrained("someone/other-model")
    folder = tmp_path / "m"
    tiny_adapter(NAME).save_pretrained(str(folder))
    from safetensors.torch import load_file, save_file

    file = folder / "transformer" / "model.safetensors"
    state = load_file(str(file))
    state["renamed.weight"] = state.pop("final_layer.linear.weight")
    save_file(state, str(file))
    with pytest.raises(ModelError, match="does not match"):
        cls.from_pretrained(str(folder))
    with pytest.raises(InputError, match="option"):
        cls.tiny().__class__(
            tiny_adapter(NAME).pipe, model_id="x", prompt_embeds=None, prompt_mask=None,
            settings={"heigth": 64}, device=torch.device("cpu"), dtype=torch.float32,
        )  # fmt: skip


def test_prompt_is_embedded_once_with_a_local_t5(tiny_adapter, tmp_path):
    """A folder with a (tiny, offline) T5: the prompt + v1.2's aesthetic suffix is embedded at
    load time with the 300-token (here: 4) padding and mask; without T5 a prompt is refused."""
    from transformers import T5Config, T5EncoderModel

    folder = tmp_path / "with-t5"
    tiny_adapter(NAME).save_pretrained(str(folder))
    cls = ADAPTERS.get(NAME)
    with pytest.raises(ModelError, match="text_encoder"):
        cls.from_pretrained(str(folder), prompt="a cat")
    tok, t5 = save_tiny_text_encoder(folder, ["a", "cat", "aesthetic"], T5EncoderModel, T5Config)
    a = cls.from_pretrained(str(folder), prompt="A cat ")
    ids = tok(["a cat aesthetic score: 6.5."], padding="max_length", max_length=4, truncation=True)
    with torch.no_grad():
        expected = t5(torch.tensor(ids["input_ids"]))[0]
    torch.testing.assert_close(a.prompt_embeds, expected)
    assert a.prompt_mask.all() and a.prompt_mask.shape == (1, 4)
    assert not torch.equal(a.prompt_embeds, tiny_adapter(NAME).prompt_embeds)


def test_default_model_loads_from_the_local_hub_cache_only(
    tiny_adapter, image, tmp_path, monkeypatch
):
    """The two official repositories are looked up with ``local_files_only`` (never downloaded);
    a cache miss is a clear error."""
    import huggingface_hub
    from huggingface_hub.errors import LocalEntryNotFoundError

    cls = ADAPTERS.get(NAME)
    folder = tmp_path / "m"
    tiny_adapter(NAME).save_pretrained(str(folder))
    calls = []

    def cached(repo, **kw):
        calls.append((repo, kw))
        if not kw.get("local_files_only"):
            raise AssertionError("would download")
        if repo == "hpcai-tech/OpenSora-STDiT-v3":
            return str(folder / "transformer")
        if repo == "hpcai-tech/OpenSora-VAE-v1.2":
            return str(folder / "vae")
        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", cached)
    a = cls.from_pretrained("hpcai-tech/OpenSora-STDiT-v3", height=64, width=64, num_frames=17)
    assert [r for r, _ in calls] == ["hpcai-tech/OpenSora-STDiT-v3", "hpcai-tech/OpenSora-VAE-v1.2"]
    assert all(kw["local_files_only"] for _, kw in calls)
    b = tiny_adapter(NAME)
    g = torch.Generator().manual_seed(0)
    t, noise = b.sample_timesteps(1, g), torch.randn(b.latent_shape(1), generator=g)
    with torch.no_grad():
        same = a.denoise(image, t, noise, z0=b.encode(image).image_latents)
        # zero text (no prompt file in the cache) vs the tiny prompt: the VAE side is identical
        torch.testing.assert_close(same.noisy, b.denoise(image, t, noise).noisy)

    def missing(repo, **kw):
        raise LocalEntryNotFoundError("not cached")

    monkeypatch.setattr(huggingface_hub, "snapshot_download", missing)
    with pytest.raises(ModelError, match="local Hugging Face cache"):
        cls.from_pretrained("hpcai-tech/OpenSora-STDiT-v3")


def test_capture_under_gradient_checkpointing(image):
    a = ADAPTERS.get(NAME).tiny()
    g = torch.Generator().manual_seed(0)
    t, noise = a.sample_timesteps(1, g), torch.randn(a.latent_shape(1), generator=g)
    layer, hidden = a.layer_names("attention-temporal")[-1], a.layer_names("hidden")[-1]

    def enable():
        a.pipe.transformer.gradient_checkpointing = True

    check_capture_under_checkpointing(a, image, t, noise, layer, hidden, enable)


def test_official_config_files_parse_to_the_shipped_configuration():
    """``config.json`` as the official config classes write it (``STDiT3Config`` with the
    ``STDiT3-XL/2`` + inference arguments, ``VideoAutoencoderPipelineConfig`` of
    ``OpenSoraVAE_V1_2``; dumped with ``to_json_string()``), so the hub folders load as they are."""
    from stillguard.adapters.open_sora import pipeline as P
    from stillguard.adapters.open_sora.nets.stdit3 import STDiT3Config
    from stillguard.adapters.open_sora.nets.vae import VideoVAEConfig

    stdit = {
        "architectures": ["STDiT3"], "caption_channels": 4096, "class_dropout_prob": 0.1,
        "depth": 28, "drop_path": 0.0, "enable_flash_attn": True, "enable_layernorm_kernel": True,
        "enable_sequence_parallelism": False, "freeze_y_embedder": False, "hidden_size": 1152,
        "in_channels": 4, "input_size": [None, None, None], "input_sq_size": 512,
        "mlp_ratio": 4.0, "model_max_length": 300, "model_type": "STDiT3", "num_heads": 16,
        "only_train_temporal": False, "patch_size": [1, 2, 2], "pred_sigma": True,
        "qk_norm": True, "skip_y_embedder": False,
    }  # fmt: skip
    vae = {
        "architectures": ["VideoAutoencoderPipeline"], "cal_loss": False, "freeze_vae_2d": False,
        "from_pretrained": None, "micro_frame_size": 17, "model_type": "VideoAutoencoderPipeline",
        "scale": [3.85, 2.32, 2.33, 3.06], "shift": [-0.1, 0.34, 0.27, 0.98],
        "vae_2d": {
            "from_pretrained": "PixArt-alpha/pixart_sigma_sdxlvae_T5_diffusers",
            "local_files_only": False, "micro_batch_size": 4, "subfolder": "vae",
            "type": "VideoAutoencoderKL",
        },
        "vae_temporal": {"from_pretrained": None, "type": "VAE_Temporal_SD"},
    }  # fmt: skip
    shipped_stdit, shipped_vae, shipped_sched = P.read_configs(real_config(NAME))
    assert STDiT3Config.from_dict(stdit) == shipped_stdit == STDiT3Config()
    parsed = VideoVAEConfig.from_dict(vae)
    assert parsed.temporal == shipped_vae.temporal
    assert parsed.micro_frame_size == 17 and parsed.micro_batch_size == 4
    assert parsed.shift == shipped_vae.shift and parsed.scale == shipped_vae.scale
    drop = {"_source"}
    assert {k: v for k, v in shipped_vae.spatial.items() if k not in drop} == parsed.spatial
    assert (shipped_sched.num_sampling_steps, shipped_sched.cfg_scale) == (30, 7.0)
