"""The target-model adapter contract.

An adapter wraps a diffusers image-to-video pipeline and exposes the differentiable pieces an
attack needs. The pipeline's own ``__call__`` (no-grad) is used only by :meth:`Adapter.generate`.

Conventions (never guessed):
    * images ``(B, 3, H, W)`` float in ``[0, 1]``; any ``H, W`` is accepted by :meth:`encode`, which
      resizes to the adapter's working resolution **inside torch** (antialiased bicubic), so the
      gradient reaches a full-resolution image;
    * videos ``(B, F, 3, H, W)`` float in ``[0, 1]``;
    * video latents ``(B, F_lat, C_lat, h, w)`` as the denoiser consumes them (diffusers' layout for
      CogVideoX and SVD alike).

Capabilities (strings in :attr:`Adapter.capabilities`) that methods may require:
    ``"hidden-states"``       block outputs of the denoiser can be captured;
    ``"attention-joint"``     full (coupled) spatio-temporal self-attention can be captured (CogVideoX);
    ``"attention-temporal"``  temporal self-attention can be captured (SVD);
    ``"attention-spatial"``   spatial self-attention can be captured (SVD);
    ``"vae-features"``        VAE-encoder layer outputs can be captured;
    ``"image-embeds"``        the conditioning has an image embedding (SVD's CLIP);
    ``"rollout"``             :meth:`rollout` (K differentiable denoising steps) is available.
"""

from __future__ import annotations

import contextlib
from abc import ABC, abstractmethod
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
from torch import Tensor

from .captured import Captured


@dataclass
class Conditioning:
    """What the denoiser is conditioned on, built from the image exactly as the pipeline does.

    Attributes:
        image_latents: the image latent as the denoiser consumes it, already scaled/padded/repeated.
            Shape: ``(B, F_lat, C_lat, h, w)``.
        first_latent: the unpadded, *unscaled* VAE latent of the image (a 1-frame encode).
            Shape: ``(B, C_lat, h, w)``.
        image_embeds: image embedding (SVD: CLIP image embeds ``(B, 1, D)``), else ``None``.
        extra: model-specific tensors (e.g. SVD's ``added_time_ids``).
    """

    image_latents: Tensor
    first_latent: Tensor
    image_embeds: Tensor | None = None
    extra: dict[str, Tensor] = field(default_factory=dict)


@dataclass
class Denoised:
    """One denoiser forward.

    Attributes:
        pred: the model output in its own parameterization (CogVideoX: v; SVD: EDM-preconditioned).
        target: what ``pred`` is trained to match, so ``mse(pred, target)`` is the training loss.
        x0: the predicted clean video latent (same shape as ``z0``).
        z0: the clean video latent that was noised.
        noisy: the noisy latent fed to the denoiser.
    Shape:
        all ``(B, F_lat, C_lat, h, w)``.
    """

    pred: Tensor
    target: Tensor
    x0: Tensor
    z0: Tensor
    noisy: Tensor


class Adapter(ABC):
    """Base class of all target-model adapters. See the module docstring for conventions."""

    registry_name: ClassVar[str]
    capabilities: ClassVar[frozenset[str]] = frozenset()
    #: the hub id used when no model is given
    default_model: ClassVar[str | None] = None
    #: published checkpoints whose configuration ships in ``adapters/configs``: hub id -> folder name
    real_models: ClassVar[dict[str, str]] = {}

    #: hub id, local folder, ``"tiny"`` or ``"toy"``
    model_id: str
    #: True when built by :meth:`from_config`: the real architecture with random weights
    random_weights: bool = False
    #: native generation size and frame count
    height: int
    width: int
    num_frames: int
    device: torch.device
    dtype: torch.dtype

    # ------------------------------------------------------------------ construction
    @classmethod
    @abstractmethod
    def from_pretrained(
        cls,
        model: str,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> Adapter:
        """Load from a hub id or a local folder (safetensors only, never remote code)."""

    @classmethod
    @abstractmethod
    def tiny(cls, seed: int = 0, *, device: str | torch.device = "cpu") -> Adapter:
        """The same diffusers classes built offline from small configs with random weights."""

    @classmethod
    def from_config(
        cls,
        folder: str | Any,
        *,
        device: str | torch.device = "cpu",
        dtype: torch.dtype = torch.float32,
        **options: Any,
    ) -> Adapter:
        """Build every component from a **config-only** folder, with random weights (no weights read).

        ``folder`` is laid out like a pipeline folder without weights (``model_index.json``, each
        component's ``config.json`` / ``scheduler_config.json`` / ``preprocessor_config.json`` as in
        a hub snapshot, ``stillguard.json``); the shipped real configurations are in
        ``stillguard/adapters/configs/`` (see :func:`stillguard.adapters.official.config_folder`).
        Components are built through the classes ``model_index.json`` names (see
        :func:`._tiny.folder_components`); options are the adapter's generation settings plus
        ``seed`` (random weights). Prompt embeddings are zeros of the published shape. With
        ``device="meta"`` or under ``FakeTensorMode`` nothing is allocated: this is how the planner
        sizes a real run. The adapter's ``random_weights`` is then True (``is_real`` False).
        """
        raise NotImplementedError(f"{cls.registry_name} cannot be built from a config folder yet")

    @classmethod
    def official_model(cls, part: str, *, device: str | torch.device = "meta") -> torch.nn.Module:
        """The module whose ``state_dict()`` has exactly the keys and shapes of an official weight
        file (``part`` names the file); for targets whose architecture stillguard implements."""
        raise NotImplementedError(f"{cls.registry_name} has no official_model()")

    @abstractmethod
    def save_pretrained(self, path: str) -> None:
        """Write the pipeline (safetensors) so that ``from_pretrained(path)`` gives identical outputs."""

    @property
    def is_real(self) -> bool:
        """False for the tiny random model and the shipped toys ("toy", "toy-wan"): protection
        against them does not protect against real I2V models; nor does a model built from a
        config with random weights."""
        return self.model_id not in ("tiny", "toy", "toy-wan") and not self.random_weights

    # ------------------------------------------------------------------ differentiable pieces
    @abstractmethod
    def encode(self, x: Tensor) -> Conditioning:
        """Image ``(B,3,H,W)`` in [0,1] -> conditioning, as the pipeline builds it, differentiably."""

    @abstractmethod
    def sample_timesteps(self, batch: int, generator: torch.Generator) -> Tensor:
        """Random training timesteps for :meth:`denoise` (model units), drawn from ``generator``."""

    @abstractmethod
    def latent_shape(self, batch: int = 1) -> tuple[int, ...]:
        """Shape of the video latent ``(B, F_lat, C_lat, h, w)`` at the working resolution."""

    @abstractmethod
    def denoise(
        self,
        x: Tensor | Conditioning,
        timestep: Tensor,
        noise: Tensor,
        *,
        z0: Tensor | None = None,
    ) -> Denoised:
        """One denoiser forward on ``z0`` noised at ``timestep`` with ``noise``, conditioned on ``x``.

        ``z0`` defaults to the static video made of the image latent repeated over all latent frames
        (what a frozen video would be); pass a clean video's latent to use a reference video.
        """

    def rollout(
        self, x: Tensor | Conditioning, noise: Tensor, steps: int
    ) -> Tensor:  # pragma: no cover - optional
        """``steps`` differentiable sampler steps from pure ``noise``; returns the final latent."""
        raise NotImplementedError(f"{self.registry_name} has no differentiable rollout")

    @abstractmethod
    def encode_video(self, video: Tensor) -> Tensor:
        """Video ``(B,F,3,H,W)`` in [0,1] -> clean video latent ``z0`` for :meth:`denoise`."""

    # ------------------------------------------------------------------ introspection
    @abstractmethod
    def layer_names(self, kind: str) -> list[str]:
        """Names usable in :meth:`capture`. ``kind`` is ``"hidden"``, ``"attention"``,
        ``"attention-temporal"``, ``"attention-spatial"`` or ``"vae"``; in network order."""

    @abstractmethod
    @contextlib.contextmanager
    def capture(
        self,
        hidden: Sequence[str] = (),
        attention: Sequence[str] = (),
        *,
        mode: str = "exact",
        max_queries: int = 256,
        generator: torch.Generator | None = None,
    ) -> Iterator[Captured]:
        """Record block outputs and attention probabilities of the named layers.

        ``mode`` is ``"exact"`` (full maps), ``"sampled"`` (``max_queries`` random query rows against
        all keys, drawn from ``generator``) or ``"pooled"`` (per-frame mean-pooled q and k). Outputs
        are unchanged; the original attention processors and hooks are restored on exit.
        """

    # ------------------------------------------------------------------ generation (no grad)
    @abstractmethod
    def generate(
        self,
        x: Tensor,
        *,
        seed: int = 0,
        num_frames: int | None = None,
        num_inference_steps: int | None = None,
    ) -> Tensor:
        """Video ``(B,F,3,H,W)`` in [0,1] from the pipeline's own ``__call__``; same seed, same video.
        ``x`` is resized to the working resolution first."""

    def to(self, device: str | torch.device) -> Adapter:
        """Move every module and tensor the adapter holds to ``device`` (for ensemble offloading).

        Modules, pipelines, tensors and containers of tensors among the adapter's attributes are
        moved in place; caches keyed by shape keep working since their tensors move too.
        """
        device = torch.device(device)

        def move(value: Any) -> Any:
            if isinstance(value, torch.nn.Module) or hasattr(value, "components"):
                return value.to(device)
            if isinstance(value, Tensor):
                return value.to(device)
            if isinstance(value, dict):
                return {k: move(v) for k, v in value.items()}
            if isinstance(value, tuple) and hasattr(value, "_fields"):  # a named tuple
                return type(value)(*(move(v) for v in value))
            if isinstance(value, (list, tuple)):
                return type(value)(move(v) for v in value)
            return value

        for name, value in list(vars(self).items()):
            if name != "device":
                setattr(self, name, move(value))
        self.device = device
        return self

    def prepare(self, x: Tensor) -> Tensor:
        """Resize ``(B,3,H,W)`` in [0,1] to the working resolution, differentiably."""
        if x.shape[-2:] == (self.height, self.width):
            return x
        return torch.nn.functional.interpolate(
            x, size=(self.height, self.width), mode="bicubic", antialias=True, align_corners=False
        ).clamp(0, 1)

    def describe(self) -> dict[str, Any]:
        """A JSON-able description for sidecars and reports."""
        return {
            "target": self.registry_name,
            "model": self.model_id,
            "height": self.height,
            "width": self.width,
            "num_frames": self.num_frames,
            "dtype": str(self.dtype).replace("torch.", ""),
            "real_model": self.is_real,
        }
