"""The shipped toy image-to-video model: synthetic data, training, weights and model card.

A 64x64, 9-frame CogVideoX-family pipeline (real diffusers classes, about 5 M parameters) trained
on CPU on synthetic photo-like scenes with camera and object motion. It exists so that stillguard
runs offline on a laptop: demos, tests and research on the protection methods. It is **not** a real
video model, and protection computed on it does not protect against real I2V models. See
``MODEL_CARD.md`` beside this file.

Modules: :mod:`~stillguard.toy.training.data` (synthetic videos), :mod:`~stillguard.toy.build` (architecture,
export and loading; :mod:`~stillguard.toy.wan_build` for the Wan-family toy, :mod:`~stillguard.toy.folder` the
pipeline folder both write and read), :mod:`~stillguard.toy.training.stages` (with the transformer loop of
:mod:`~stillguard.toy.training.ema_loop`) and :mod:`~stillguard.toy.training.train` (training,
``python -m stillguard.toy.training.train``), :mod:`~stillguard.toy.training.quality` (measured quality).
Importing this package is cheap; torch and diffusers load only when a function needs them.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

__all__ = ["load_pipeline", "weights_dir"]


def weights_dir() -> Path:
    """The folder of the shipped toy pipeline (``model_index.json``, fp16 safetensors, ...)."""
    return Path(__file__).resolve().parent / "weights"


def load_pipeline(path: str | Path | None = None, **kwargs: Any):
    """Load the shipped (or another) toy pipeline with plain diffusers.

    See :func:`stillguard.toy.build.load_pipeline`; returns ``(pipeline, prompt_embeds, defaults)``.
    """
    from stillguard.toy.build import load_pipeline as _load

    return _load(path, **kwargs)
