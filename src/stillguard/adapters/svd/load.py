"""Building the ``svd`` adapter: from weights, from a config-only folder, tiny; saving.

:class:`SVDLoading` is a mixin of :class:`~.adapter.SVD`; every constructor ends in
``cls(pipe, ...)`` with the pipeline and the generation settings.

* :meth:`~SVDLoading.from_pretrained`: a hub id (only from the local Hugging Face cache,
  ``local_files_only=True``) or a ``save_pretrained`` folder;
* :meth:`~SVDLoading.from_config`: every component (UNet, temporal-decoder VAE, CLIP ViT-H/14 image
  encoder, Euler scheduler, CLIP image processor) built from a config-only folder with random
  weights; nothing allocated on ``device="meta"`` or under ``FakeTensorMode``. SVD has no prompt;
* :meth:`~SVDLoading.tiny`: the same classes from the small configs of :mod:`.tiny`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, TypeVar

import torch

from ...errors import InputError
from ...registry import close_matches
from .._shared.build import config_pipeline
from .._shared.load import (
    memory_switches,
    merged_settings,
    open_pipeline,
    resolve_dtype,
    save_pipeline,
)
from .tiny import SIZE, svd_pipe

T = TypeVar("T", bound="SVDLoading")

#: the pipeline's ``__call__`` defaults (diffusers 0.42, ``StableVideoDiffusionPipeline``); the
#: frame count defaults to the UNet config's ``num_frames`` (14 for img2vid, 25 for img2vid-xt)
DEFAULTS = dict(
    height=576,
    width=1024,
    num_inference_steps=25,
    fps=7,
    motion_bucket_id=127,
    noise_aug_strength=0.02,
    min_guidance_scale=1.0,
    max_guidance_scale=3.0,
)
FRAME_SETTINGS = ("num_frames", "opt_num_frames")


def _check(settings: dict[str, Any]) -> None:
    unknown = sorted(set(settings) - set(DEFAULTS) - set(FRAME_SETTINGS))
    if unknown:
        raise InputError(
            f"unknown svd option(s) {unknown}: "
            f"{close_matches(unknown[0], [*DEFAULTS, *FRAME_SETTINGS])}"
        )


class SVDLoading:
    """Constructors and ``save_pretrained`` of the SVD adapter (a mixin)."""

    @classmethod
    def from_pretrained(
        cls: type[T],
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        variant: str | None = None,
        gradient_checkpointing: bool = False,
        vae_slicing: bool = False,
        **settings: Any,
    ) -> T:
        """Load a hub id (from the local cache only) or a local ``save_pretrained`` folder.

        ``settings`` (``height``, ``width``, ``num_frames``, ``opt_num_frames``,
        ``num_inference_steps``, ``fps``, ``motion_bucket_id``, ``noise_aug_strength``,
        ``min_guidance_scale``, ``max_guidance_scale``) override the folder's ``stillguard.json``,
        which overrides the pipeline's defaults. ``vae_slicing`` is accepted for symmetry with
        CogVideoX; SVD's image VAE already encodes frame by frame.
        """
        from diffusers import StableVideoDiffusionPipeline

        _check(settings)
        pipe, model_id, folder, _, device, dtype = open_pipeline(
            StableVideoDiffusionPipeline, model, device, dtype, "Stable Video Diffusion",
            refuse_toy=True, variant=variant,
        )  # fmt: skip
        memory_switches(pipe, pipe.unet, gradient_checkpointing=gradient_checkpointing)
        settings = merged_settings(folder, settings)
        return cls(pipe, model_id=model_id, settings=settings, device=device, dtype=dtype)

    @classmethod
    def from_config(
        cls: type[T],
        folder: str | Path,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype | str = torch.float32,
        seed: int = 0,
        gradient_checkpointing: bool = False,
        **settings: Any,
    ) -> T:
        """Every component from a config-only folder with random weights drawn from ``seed``.

        ``settings`` as in :meth:`from_pretrained`; they override the folder's ``stillguard.json``.

        Raises:
            InputError: an unknown option.
            ModelError: the folder is not a Stable Video Diffusion pipeline folder.
        """
        from diffusers import StableVideoDiffusionPipeline

        _check(settings)
        dtype, folder = resolve_dtype(dtype), Path(folder)
        needed = ("vae", "image_encoder", "unet", "scheduler", "feature_extractor")
        pipe = config_pipeline(
            folder, StableVideoDiffusionPipeline, seed=seed, device=device, dtype=dtype,
            needed=needed, what="an SVD",
        )  # fmt: skip
        memory_switches(pipe, pipe.unet, gradient_checkpointing=gradient_checkpointing)
        stored = merged_settings(folder, settings)
        adapter = cls(
            pipe,
            model_id=str(stored.get("model") or folder),
            settings={k: v for k, v in stored.items() if k in DEFAULTS or k in FRAME_SETTINGS},
            device=torch.device(device),
            dtype=dtype,
        )
        adapter.random_weights = True
        return adapter

    @classmethod
    def tiny(cls: type[T], seed: int = 0, *, device: str | torch.device = "cpu") -> T:
        """64x64, 9 frames; 2-level UNet (32, 64 ch), 8x VAE, 2-layer CLIP at 224 px / patch 32."""
        device = torch.device(device)
        pipe = svd_pipe(seed, device=device)
        settings = dict(height=SIZE, width=SIZE, num_inference_steps=3)
        return cls(pipe, model_id="tiny", settings=settings, device=device, dtype=torch.float32)

    def _settings(self) -> dict[str, Any]:
        keys = ["height", "width", *FRAME_SETTINGS, *list(DEFAULTS)[2:]]
        return {k: getattr(self, k) for k in keys}

    def save_pretrained(self, path: str) -> None:
        """Pipeline (safetensors, CLIP and feature extractor included) + ``stillguard.json``."""
        save_pipeline(self, path, None, self._settings())
