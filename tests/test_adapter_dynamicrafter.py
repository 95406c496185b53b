"""DynamiCrafter: official architecture (keys, shapes, parameter counts), loading, sampling, convert.

The key/shape manifests in ``tests/data/official_keys/dynamicrafter_*.txt`` were derived by
instantiating the *official* classes (``lvdm.models.ddpm3d.LatentVisualDiffusion`` of
Doubiiu/DynamiCrafter@c453369 from ``configs/inference_{1024,512,256}_v1.0.yaml``, with
open_clip_torch 3.3.0 building ViT-H-14 without pretrained weights) on the meta device, with the
heavy imports the constructors never call (einops, pytorch_lightning, torchvision, ...) stubbed,
and writing ``state_dict()`` as ``key<TAB>shape`` lines. They are independent of stillguard's code.
"""

from __future__ import annotations

import functools
from pathlib import Path

import pytest
import torch

from stillguard.adapters import ADAPTERS, official_model
from stillguard.adapters.dynamicrafter import config as dc_config
from stillguard.adapters.dynamicrafter import ddim as dc_ddim
from stillguard.adapters.dynamicrafter import weights as dc_load
from stillguard.adapters.dynamicrafter.nets.model import DCModel
from stillguard.adapters.dynamicrafter.tiny import TINY, TINY_FRAMES
from stillguard.adapters.official import config_folder
from stillguard.errors import InputError, ModelError

DATA = Path(__file__).parent / "data" / "official_keys"
PARTS = ("1024", "512", "256")
DC = ADAPTERS.get("dynamicrafter")


def _manifest(part: str) -> dict[str, tuple[int, ...]]:
    out = {}
    for line in (DATA / f"dynamicrafter_{part}.txt").read_text().splitlines():
        if line.startswith("#"):
            continue
        key, shape = line.split("\t")
        out[key] = tuple(int(s) for s in shape.split(",")) if shape else ()
    return out


@functools.cache
def _official(part: str) -> torch.nn.Module:
    return official_model("dynamicrafter", part)


def _count(model: torch.nn.Module, prefix: str = "") -> int:
    return sum(p.numel() for n, p in model.named_parameters() if n.startswith(prefix))


@pytest.mark.parametrize("part", PARTS)
def test_official_keys_and_shapes_match_the_manifest(part):
    model = _official(part)
    ours = {k: tuple(v.shape) for k, v in model.state_dict().items()}
    ref = _manifest(part)
    assert sorted(set(ref) - set(ours)) == [] and sorted(set(ours) - set(ref)) == []
    assert {k: v for k, v in ours.items() if ref[k] != v} == {}
    assert all(p.is_meta for p in model.parameters())  # nothing allocated


def test_official_parameter_counts_match_published_figures():
    from diffusers import AutoencoderKL

    m = _official("1024")
    # OpenCLIP ViT-H-14 (mlfoundations/open_clip docs/model_profile.csv): image 632.08M, text 354.03M
    assert round(_count(m, "embedder.model.visual.") / 1e6, 2) == 632.08
    assert round(_count(m.cond_stage_model) / 1e6, 2) == 354.03
    # SD KL-f8 VAE: same count as diffusers' AutoencoderKL in the SD layout (83.65M)
    with torch.device("meta"):
        sd_vae = AutoencoderKL(
            block_out_channels=(128, 256, 512, 512), layers_per_block=2, latent_channels=4,
            down_block_types=("DownEncoderBlock2D",) * 4, up_block_types=("UpDecoderBlock2D",) * 4,
        )  # fmt: skip
    assert _count(m.first_stage_model) == _count(sd_vae)
    # the whole checkpoint in bf16: Kijai/DynamiCrafter_pruned dynamicrafter_1024_v1_bf16.safetensors
    # is 5.22 GB (Hugging Face file listing; bf16 = 2 bytes per parameter)
    total = _count(m)
    assert round(total * 2 / 1e9, 2) == 5.22
    # 256 adds one learnable image-attention scale per spatial transformer (16)
    assert _count(_official("256")) == total + 16
    assert _count(_official("512")) == total


@pytest.mark.parametrize("part", PARTS)
def test_shipped_configs_build_on_meta_at_the_published_size(part):
    a = DC.from_config(config_folder(f"dynamicrafter-{part}"), device="meta")
    size = {"1024": (576, 1024), "512": (320, 512), "256": (256, 256)}[part]
    assert (a.height, a.width, a.num_frames) == (*size, 16)
    # the latent size equals the YAML's model.params.image_size
    yaml_size = {"1024": (72, 128), "512": (40, 64), "256": (32, 32)}[part]
    assert a.latent_shape(1) == (1, 16, 4, *yaml_size)
    assert all(p.is_meta for p in a.pipe.parameters())
    assert a.prompt["prompt_embeds"].shape == (1, 77, 1024)
    assert a.pipe.parameterization == ("eps" if part == "256" else "v")


def test_official_model_rejects_unknown_parts():
    with pytest.raises(InputError, match="1024"):
        official_model("dynamicrafter", "2048")


def test_unimplemented_switches_are_refused():
    cfg = dict(TINY, unet={**TINY["unet"], "use_relative_position": True})
    with pytest.raises(ModelError, match="use_relative_position"):
        DCModel(cfg, with_text=False)


def test_ddim_timesteps_follow_the_official_spacings():
    trailing = dc_ddim.ddim_timesteps(50, "uniform_trailing")
    assert trailing[0] == 19 and trailing[-1] == 999 and len(trailing) == 50
    uniform = dc_ddim.ddim_timesteps(50, "uniform")
    assert uniform[0] == 1 and uniform[-1] == 981 and len(uniform) == 50
    with pytest.raises(InputError, match="spacing"):
        dc_ddim.ddim_timesteps(5, "leading")


def test_zero_snr_schedule_and_dynamic_rescale_buffers():
    m = DCModel(TINY, with_text=False)
    assert float(m.alphas_cumprod[-1]) == pytest.approx(0.0, abs=1e-7)  # zero terminal SNR
    assert m.scale_arr.shape == (1400,) and float(m.scale_arr[0]) == 1.0
    assert float(m.scale_arr[-1]) == pytest.approx(0.3)


def test_denoise_parameterisation(tiny_adapter, image):
    """v-prediction with dynamic rescale: target gives back z0, pred gives x0, noisy as documented."""
    a = tiny_adapter("dynamicrafter")
    g = torch.Generator().manual_seed(0)
    t, noise = a.sample_timesteps(1, g), torch.randn(a.latent_shape(1), generator=g)
    with torch.no_grad():
        out = a.denoise(image, t, noise)
    i = int(t.round())
    ab, s = a.pipe.alphas_cumprod[i], a.pipe.scale_arr[i]
    torch.testing.assert_close(out.noisy, ab.sqrt() * s * out.z0 + (1 - ab).sqrt() * noise)
    back = (ab.sqrt() * out.noisy - (1 - ab).sqrt() * out.target) / s
    torch.testing.assert_close(back, out.z0, rtol=0, atol=1e-5)
    x0 = (ab.sqrt() * out.noisy - (1 - ab).sqrt() * out.pred) / s
    torch.testing.assert_close(x0, out.x0)


def test_temporal_maps_are_frame_by_frame(tiny_adapter, image):
    a = tiny_adapter("dynamicrafter")
    temporal = a.layer_names("attention-temporal")
    assert temporal[0].startswith("init_attn") and len(temporal) % 2 == 0
    g = torch.Generator().manual_seed(0)
    t, noise = a.sample_timesteps(1, g), torch.randn(a.latent_shape(1), generator=g)
    b, f, _, h, w = a.latent_shape(1)
    with torch.no_grad(), a.capture(attention=temporal, mode="pooled") as cap:
        a.denoise(image, t, noise)
    assert all(cap.attention[n][0].shape[0] == b and cap.attention[n][0].shape[-2:] == (f, f) for n in temporal)  # fmt: skip
    with torch.no_grad(), a.capture(attention=temporal[:1]) as cap:
        a.denoise(image, t, noise)
    assert cap.attention[temporal[0]][0].shape[0] == b * h * w


def test_image_tokens_reach_only_their_frame():
    """With F·Q image tokens, frame f cross-attends to its own Q tokens (the official 77 + t·16 rule).

    The temporal layers' last projections are zeroed (as the official init does) so that frames do
    not mix; then changing the last frame's image tokens changes the last frame only.
    """
    from stillguard.adapters.dynamicrafter.nets.attention import TemporalTransformer
    from stillguard.adapters.dynamicrafter.nets.unet import TemporalConvBlock

    torch.manual_seed(0)
    unet = DCModel(TINY, with_text=False).unet.eval()
    for p in unet.parameters():  # the zero-initialised output layers would hide everything
        torch.nn.init.normal_(p, std=0.05)
    for m in unet.modules():
        last = m.proj_out if isinstance(m, TemporalTransformer) else None
        last = m.conv4[-1] if isinstance(m, TemporalConvBlock) else last
        if last is not None:
            torch.nn.init.zeros_(last.weight)
            torch.nn.init.zeros_(last.bias)
    f, q = TINY_FRAMES, TINY["unet"]["image_tokens_per_frame"]
    x, t = torch.randn(1, 8, f, 8, 8), torch.tensor([500.0])
    ctx = torch.randn(1, 77 + f * q, 32)
    ctx2 = ctx.clone()
    ctx2[:, 77 + (f - 1) * q :] += 1.0  # change only the last frame's tokens
    with torch.no_grad():
        diff = (unet(x, t, ctx) - unet(x, t, ctx2)).abs().amax(dim=(0, 1, 3, 4))
    assert diff[-1] > 1e-4 and torch.all(diff[:-1] == 0)
    # with another token count every frame sees every token: all frames change
    short = torch.randn(1, 77 + q, 32)
    with torch.no_grad():
        diff = (unet(x, t, short) - unet(x, t, short + 1.0)).abs().amax(dim=(0, 1, 3, 4))
    assert torch.all(diff > 1e-4)


def test_single_file_and_text_tower_loading(tmp_path, image):
    """A converted single file with a config folder; the text tower embeds the empty prompt."""
    from safetensors.torch import save_file

    torch.manual_seed(1)
    net = DCModel(TINY, with_text=True)
    cfg = tmp_path / "cfg"
    dc_config.write_config(cfg, TINY)
    file = tmp_path / "model.safetensors"
    save_file({k: v.contiguous() for k, v in net.state_dict().items()}, str(file))
    a = DC.from_pretrained(str(file), config=str(cfg), height=64, width=64, num_frames=4)
    from stillguard.adapters.dynamicrafter.nets.clip import TextEmbedder

    with torch.no_grad():
        empty = net.cond_stage_model(TextEmbedder.empty_tokens())
    torch.testing.assert_close(a.prompt["prompt_embeds"], empty)
    assert a.pipe.cond_stage_model is None  # dropped once the prompt is embedded
    with torch.no_grad():
        ref = net.first_stage_model.encode(a.prepare(image) * 2 - 1)[0]
    torch.testing.assert_close(a.encode(image).first_latent, ref)
    with pytest.raises(ModelError, match="safetensors"):
        DC.from_pretrained(str(tmp_path / "cfg" / "unet" / "config.json"))


def test_guess_part_from_keys():
    scale = torch.linspace(1.0, 0.3, 1400)
    assert dc_load.guess_part(["a.attn2.alpha"], None) == "256"
    assert dc_load.guess_part(["x"], scale) == "1024"
    assert dc_load.guess_part(["x"], torch.linspace(1.0, 0.7, 1400)) == "512"
    with pytest.raises(ModelError, match="config="):
        dc_load.guess_part(["x"], torch.linspace(1.0, 0.5, 1400))
    renamed = dc_load.rename_official({"model.diffusion_model.framestride_embed.0.weight": 1})
    assert list(renamed) == ["model.diffusion_model.fps_embedding.0.weight"]


def test_hub_ids_and_official_pickles_are_refused_with_the_conversion_recipe(tmp_path):
    with pytest.raises(ModelError, match="stillguard convert"):
        DC.from_pretrained("Doubiiu/DynamiCrafter_1024")
    torch.save({"state_dict": {"w": torch.zeros(1)}}, tmp_path / "model.ckpt")  # a hub download
    with pytest.raises(ModelError, match="stillguard convert"):
        DC.from_pretrained(str(tmp_path))


# ----------------------------------------------------------------------------- convert
def _tiny_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A Lightning-style checkpoint of the tiny model (256-style fps key name, extra entries)."""
    torch.manual_seed(2)
    state = DCModel(TINY, with_text=True).state_dict()
    stored = {k.replace("fps_embedding", "framestride_embed"): v for k, v in state.items()}
    stored["model.diffusion_model.some_int"] = 3  # a non-tensor entry is dropped
    torch.save({"state_dict": stored, "epoch": 7, "global_step": 100}, path)
    return state


def test_convert_keeps_the_state_dict(tmp_path):
    from safetensors.torch import load_file

    from stillguard.adapters.dynamicrafter.convert import convert

    state = _tiny_checkpoint(tmp_path / "model.ckpt")
    report = convert(tmp_path / "model.ckpt", tmp_path / "out.safetensors")
    got = load_file(str(tmp_path / "out.safetensors"))
    assert set(got) == set(state)  # framestride_embed renamed, non-tensors dropped
    assert all(torch.equal(got[k], state[k]) for k in state)
    assert report["tensors"] == len(state) and report["dropped_non_tensors"] == 1
    unet = [k for k in state if k.startswith("model.diffusion_model.")]
    assert report["by_prefix"]["model.diffusion_model"]["tensors"] == len(unet)
    assert report["model"] == "1024"  # told by scale_arr; the tiny keys differ from the real ones
    assert report["official_check"]["missing"]
    with pytest.raises(InputError, match="--force"):
        convert(tmp_path / "model.ckpt", tmp_path / "out.safetensors")
    with pytest.raises(InputError, match="safetensors"):
        convert(tmp_path / "model.ckpt", tmp_path / "out.bin")


class _Evil:
    def __reduce__(self):  # runs a command when fully unpickled
        import os

        return (os.system, (f"touch {_Evil.marker}",))


def test_convert_refuses_a_malicious_pickle(tmp_path):
    from stillguard.adapters.dynamicrafter.convert import convert

    _Evil.marker = tmp_path / "pwned"
    torch.save({"state_dict": {"w": torch.zeros(2)}, "payload": _Evil()}, tmp_path / "evil.ckpt")
    with pytest.raises(
        InputError, match="full unpickling.*posix.system|full unpickling.*os.system"
    ):
        convert(tmp_path / "evil.ckpt", tmp_path / "out.safetensors")
    assert not _Evil.marker.exists() and not (tmp_path / "out.safetensors").exists()


def test_convert_command(tmp_path):
    from typer.testing import CliRunner

    from stillguard import cli

    _tiny_checkpoint(tmp_path / "model.ckpt")
    runner = CliRunner()
    ok = runner.invoke(cli.app, ["convert", str(tmp_path / "model.ckpt"), str(tmp_path / "o.safetensors"), "--no-check"])  # fmt: skip
    assert ok.exit_code == 0, ok.output
    assert "tensors kept" in ok.output and "model.diffusion_model:" in ok.output
    _Evil.marker = tmp_path / "pwned"
    torch.save({"payload": _Evil()}, tmp_path / "evil.ckpt")
    bad = runner.invoke(cli.app, ["convert", str(tmp_path / "evil.ckpt"), str(tmp_path / "e.safetensors")])  # fmt: skip
    assert bad.exit_code == 2 and "error:" in bad.output and "unpickling" in bad.output
    assert not _Evil.marker.exists()
