"""Pipelines built from configs with random weights: the tiny test models and config-only folders.

One helper per job, shared by :meth:`Adapter.tiny` and :meth:`Adapter.from_config`:

* :func:`build_model` instantiates a model class from a config with random weights drawn from
  ``seed`` (without touching the global RNG state), directly on ``device``; on ``device="meta"`` or
  under ``torch._subclasses.fake_tensor.FakeTensorMode`` nothing is allocated (no seeding either);
* :func:`build_scheduler` builds a scheduler, always with real CPU tensors (a scheduler holds no
  weights, and its set-up uses numpy, which fake tensors cannot feed);
* :func:`folder_components` reads a pipeline folder without weights (``model_index.json`` and each
  component's ``config.json`` / ``scheduler_config.json`` / ``preprocessor_config.json``, as in a hub
  snapshot) and builds the components through the classes that ``model_index.json`` names.

Keys starting with ``"_"`` (``"_source"``, ``"_class_name"``, ...) are never passed to a
constructor: diffusers' ``extract_init_dict`` drops them itself, and they are stripped here for
transformers' configs.

The tiny configs follow diffusers' own fast tests (adapted, since their tiny text/image encoders
live on the hub) and keep each real model's switches: CogVideoX-5b-I2V's RoPE + learned positional
embeddings and zero-SNR v-prediction DDIM; CogVideoX1.5-5B-I2V's temporal patch 2, ``ofs``
embedding and inverted latent scaling; SVD-xt's EDM Euler scheduler, an 8x VAE and a CLIP image
encoder at 224 px (coarse 32-px patches).
"""

from __future__ import annotations

import contextlib
import importlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import ModelError

SIZE, FRAMES = 64, 9
TEXT_TOKENS, TEXT_DIM = 4, 16

COG_TRANSFORMER = dict(
    num_attention_heads=2, attention_head_dim=16, in_channels=8, out_channels=4, time_embed_dim=32,
    text_embed_dim=TEXT_DIM, num_layers=2, sample_width=SIZE // 8, sample_height=SIZE // 8,
    sample_frames=FRAMES, patch_size=2, temporal_compression_ratio=4,
    max_text_seq_length=TEXT_TOKENS, use_rotary_positional_embeddings=True,
    use_learned_positional_embeddings=True,
)  # fmt: skip
COG_VAE = dict(
    in_channels=3, out_channels=3, down_block_types=("CogVideoXDownBlock3D",) * 4,
    up_block_types=("CogVideoXUpBlock3D",) * 4, block_out_channels=(8, 8, 8, 8), latent_channels=4,
    layers_per_block=1, norm_num_groups=2, temporal_compression_ratio=4, sample_height=SIZE,
    sample_width=SIZE,
)  # fmt: skip
#: the values of CogVideoX-5b-I2V's scheduler config
COG_SCHEDULER = dict(
    beta_schedule="scaled_linear", beta_start=0.00085, beta_end=0.012, clip_sample=False,
    prediction_type="v_prediction", rescale_betas_zero_snr=True, set_alpha_to_one=True,
    snr_shift_scale=1.0, timestep_spacing="trailing", steps_offset=0, num_train_timesteps=1000,
)  # fmt: skip

#: CogVideoX1.5-5B-I2V's switches on the tiny model: temporal patches of 2 latent frames (the
#: pipeline pads the latent video to an even frame count), the ``ofs`` embedding (same width as the
#: time embedding, as in the real config), no learned positional embedding, no patch bias
COG15_TRANSFORMER = dict(
    COG_TRANSFORMER, patch_size_t=2, ofs_embed_dim=32, use_learned_positional_embeddings=False,
    patch_bias=False,
)  # fmt: skip
#: 1.5's VAE divides the image latent by the scaling factor (``invert_scale_latents``); 0.7 as 1.5
COG15_VAE = dict(COG_VAE, invert_scale_latents=True, scaling_factor=0.7)

SVD_UNET = dict(
    block_out_channels=(32, 64), layers_per_block=1, sample_size=SIZE // 8, in_channels=8,
    out_channels=4, cross_attention_dim=32,
    down_block_types=("CrossAttnDownBlockSpatioTemporal", "DownBlockSpatioTemporal"),
    up_block_types=("UpBlockSpatioTemporal", "CrossAttnUpBlockSpatioTemporal"),
    num_attention_heads=(2, 4), transformer_layers_per_block=1,
    projection_class_embeddings_input_dim=3 * 32, addition_time_embed_dim=32, num_frames=FRAMES,
)  # fmt: skip
# GroupNorm in this VAE has 32 groups, hence 32 channels; 4 blocks = 8x like the real one
SVD_VAE = dict(
    block_out_channels=[32, 32, 32, 32], in_channels=3, out_channels=3,
    down_block_types=["DownEncoderBlock2D"] * 4, latent_channels=4, layers_per_block=1,
)  # fmt: skip
SVD_CLIP = dict(
    hidden_size=32, projection_dim=32, num_hidden_layers=2, num_attention_heads=4,
    image_size=224, intermediate_size=37, patch_size=32,
)  # fmt: skip
#: the values of SVD-xt's scheduler config
SVD_SCHEDULER = dict(
    beta_start=0.00085, beta_end=0.012, beta_schedule="scaled_linear",
    interpolation_type="linear", num_train_timesteps=1000, prediction_type="v_prediction",
    sigma_max=700.0, sigma_min=0.002, steps_offset=1, timestep_spacing="leading",
    timestep_type="continuous", use_karras_sigmas=True,
)  # fmt: skip


def fake_or_meta(device: str | torch.device) -> bool:
    """True when nothing is allocated: ``device`` is meta, or a ``FakeTensorMode`` is active."""
    from torch._guards import detect_fake_mode

    return torch.device(device).type == "meta" or detect_fake_mode() is not None


@contextlib.contextmanager
def seeded(seed: int, device: str | torch.device) -> Iterator[None]:
    """Draw from ``seed`` inside, leaving the global RNG as it was (no-op when nothing is real)."""
    if fake_or_meta(device):
        yield
        return
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        yield


def _public(config: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in config.items() if not k.startswith("_")}


def build_model(
    cls: type,
    config: dict[str, Any],
    *,
    seed: int | None = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
) -> torch.nn.Module:
    """``cls`` (a diffusers model or a transformers ``PreTrainedModel``) built from ``config`` with
    random weights from ``seed``, created on ``device`` and cast to ``dtype``.

    ``seed=None`` draws from the current RNG stream (several models inside one :func:`seeded`).
    """
    seeding = seeded(seed, device) if seed is not None else contextlib.nullcontext()
    with seeding, torch.device(device):
        if hasattr(cls, "config_class") and hasattr(cls.config_class, "from_dict"):
            model = cls(cls.config_class(**_public(config)))  # transformers
        else:
            model = cls.from_config(config)  # diffusers drops "_" keys itself
    return cast(model, dtype, device)


def cast(
    model: torch.nn.Module, dtype: torch.dtype, device: str | torch.device | None = None
) -> torch.nn.Module:
    """``model``'s floating parameters and buffers in ``dtype``, except in the modules its class keeps
    in float32 (``_keep_in_fp32_modules`` names path components, as in diffusers'
    ``from_pretrained``), and every tensor on ``device`` (a few constructors ignore the default
    device, e.g. diffusers' ``AlphaBlender`` builds ``torch.Tensor([alpha])``). Tensors are
    replaced rather than converted in place (``Module.to`` cannot swap fake tensors); shared
    parameters stay shared."""
    keep = getattr(model, "_keep_in_fp32_modules", None) or []
    device = torch.device(device) if device is not None else None
    done: dict[int, torch.Tensor] = {}
    for name, module in model.named_modules():
        want = torch.float32 if any(k in name.split(".") for k in keep) else dtype
        for table, wrap in ((module._parameters, True), (module._buffers, False)):
            for key, t in table.items():
                if t is None:
                    continue
                to_dtype = want if t.is_floating_point() and t.dtype != want else None
                moved = device is not None and t.device != device
                if to_dtype is None and not moved:
                    continue
                if id(t) not in done:
                    new = t.detach().to(device=device if moved else t.device, dtype=to_dtype)
                    done[id(t)] = torch.nn.Parameter(new, t.requires_grad) if wrap else new
                table[key] = done[id(t)]
    return model


def build_scheduler(cls: type, config: dict[str, Any]) -> Any:
    """A scheduler from its config, with real CPU tensors even under ``FakeTensorMode``."""
    from torch._subclasses.fake_tensor import unset_fake_temporarily

    with unset_fake_temporarily(), torch.device("cpu"):
        return cls.from_config(config)


_CONFIG_FILES = ("config.json", "scheduler_config.json", "preprocessor_config.json")


def component_class(library: str, name: str) -> type:
    """The class ``model_index.json`` names, looked up in ``diffusers`` or ``transformers`` only."""
    if library not in ("diffusers", "transformers"):
        raise ModelError(f"component class {library}.{name} is not from diffusers or transformers")
    try:
        return getattr(importlib.import_module(library), name)
    except AttributeError as err:
        raise ModelError(f"this {library} has no {name}: upgrade {library}") from err


def read_json(file: Path) -> dict[str, Any]:
    try:
        data = json.loads(file.read_text())
    except (OSError, ValueError) as err:
        raise ModelError(f"cannot read {file}: {err}") from err
    if not isinstance(data, dict):
        raise ModelError(f"{file} must hold a JSON object")
    return data


def folder_components(
    folder: str | Path,
    *,
    seed: int = 0,
    device: str | torch.device = "cpu",
    dtype: torch.dtype = torch.float32,
    skip: tuple[str, ...] = (),
) -> dict[str, Any]:
    """Every component of a config-only pipeline folder, built with random weights.

    Models go through :func:`build_model` (component ``i`` draws from ``seed + i``), schedulers
    through :func:`build_scheduler`, image processors from their JSON. Components listed in
    ``skip`` (e.g. a text encoder whose output is replaced by zero prompt embeddings) and entries
    set to ``null`` come back as ``None``.

    Raises:
        ModelError: no ``model_index.json``, a component without its config file, or a class that
            diffusers/transformers does not have.
    """
    folder = Path(folder)
    if not (folder / "model_index.json").is_file():
        raise ModelError(
            f"{folder} has no model_index.json: pass a folder laid out like a pipeline "
            "(model_index.json, <component>/config.json); see stillguard/adapters/configs/"
        )
    index = read_json(folder / "model_index.json")
    out: dict[str, Any] = {}
    entries = [(k, v) for k, v in index.items() if not k.startswith("_")]
    for i, (name, entry) in enumerate(entries):
        if name in skip or not isinstance(entry, list) or entry[0] is None:
            out[name] = None
            continue
        cls = component_class(entry[0], entry[1])
        files = [folder / name / f for f in _CONFIG_FILES if (folder / name / f).is_file()]
        if not files:
            raise ModelError(f"{folder / name} has none of {', '.join(_CONFIG_FILES)}")
        config = read_json(files[0])
        if hasattr(cls, "set_timesteps"):
            out[name] = build_scheduler(cls, config)
        elif hasattr(cls, "from_dict") and not hasattr(cls, "config_class"):
            out[name] = cls.from_dict(_public(config))  # an image processor
        else:
            out[name] = build_model(cls, config, seed=seed + i, device=device, dtype=dtype)
    return out


def cogvideox_pipe(
    seed: int, variant: str = "1.0", *, device: str | torch.device = "cpu"
) -> tuple[Any, torch.Tensor]:
    """A random ``CogVideoXImageToVideoPipeline`` (no T5) and prompt embeds ``(1, 4, 16)``.

    ``variant`` ``"1.0"`` has CogVideoX-5b-I2V's switches, ``"1.5"`` CogVideoX1.5-5B-I2V's.
    """
    from diffusers import (
        AutoencoderKLCogVideoX,
        CogVideoXDDIMScheduler,
        CogVideoXImageToVideoPipeline,
        CogVideoXTransformer3DModel,
    )

    configs = {"1.0": (COG_TRANSFORMER, COG_VAE), "1.5": (COG15_TRANSFORMER, COG15_VAE)}
    tr_config, vae_config = configs[variant]
    with seeded(seed, device):
        transformer = build_model(CogVideoXTransformer3DModel, tr_config, seed=None, device=device)
        vae = build_model(AutoencoderKLCogVideoX, vae_config, seed=None, device=device)
    pipe = CogVideoXImageToVideoPipeline(
        tokenizer=None,
        text_encoder=None,
        vae=vae,
        transformer=transformer,
        scheduler=build_scheduler(CogVideoXDDIMScheduler, COG_SCHEDULER),
    )
    gen = torch.Generator().manual_seed(seed)
    return pipe, torch.randn(1, TEXT_TOKENS, TEXT_DIM, generator=gen).to(device)


def svd_pipe(seed: int, *, device: str | torch.device = "cpu") -> Any:
    """A random ``StableVideoDiffusionPipeline`` with a tiny CLIP image encoder."""
    from diffusers import (
        AutoencoderKLTemporalDecoder,
        EulerDiscreteScheduler,
        StableVideoDiffusionPipeline,
        UNetSpatioTemporalConditionModel,
    )
    from transformers import CLIPImageProcessorPil, CLIPVisionModelWithProjection

    with seeded(seed, device):
        unet = build_model(UNetSpatioTemporalConditionModel, SVD_UNET, seed=None, device=device)
        vae = build_model(AutoencoderKLTemporalDecoder, SVD_VAE, seed=None, device=device)
        encoder = build_model(CLIPVisionModelWithProjection, SVD_CLIP, seed=None, device=device)
    return StableVideoDiffusionPipeline(
        vae=vae,
        image_encoder=encoder,
        unet=unet,
        scheduler=build_scheduler(EulerDiscreteScheduler, SVD_SCHEDULER),
        # the torchvision-free processor (transformers 5 falls back to it anyway, with a warning)
        feature_extractor=CLIPImageProcessorPil(crop_size=224, size=224),
    )
