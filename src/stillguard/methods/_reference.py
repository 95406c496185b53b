"""The reference video of a photo: what the target itself generates from the clean image.

Anti-I2V (arXiv 2603.24570, "Overall Architecture") builds "a caption and a reference video to
fulfill the conditional input requirements for VDM inference"; the authors' baseline scripts
(``vaijsc/anti-i2v``, ``--use_ref``) read such a video per image and noise ITS latent for the
diffusion loss. The source does not say how the reference is made; our choice: the target's own
sampler (:meth:`Adapter.generate`) on the clean photo, with the run's caption when one is in use,
at the frame count the attack optimises, encoded with :meth:`Adapter.encode_video`. Generation is
the costly part (a whole video), so the latent is cached per (model, photo pixels, seed, caption):
in memory for the process (the last :data:`MEMORY_SLOTS`) and, when a cache folder is given, as a
safetensors file there (written atomically), so a second run on the same photo skips it.
"""

from __future__ import annotations

import hashlib
import json
import logging
from collections import OrderedDict
from pathlib import Path

import torch
from torch import Tensor

from ..errors import CapabilityError, InputError

log = logging.getLogger(__name__)
#: how many reference latents stay in memory (least recently used dropped first)
MEMORY_SLOTS = 16
_MEMORY: OrderedDict[str, Tensor] = OrderedDict()


def reference_key(adapter, x_clean: Tensor, seed: int, caption: str) -> str:  # noqa: ANN001
    """Hex digest naming one reference: the model's description, the 8-bit photo, seed, caption."""
    h = hashlib.sha256()
    h.update(json.dumps(adapter.describe(), sort_keys=True, default=str).encode())
    h.update(json.dumps([list(x_clean.shape), int(seed), caption]).encode())
    pixels = torch.round(x_clean.detach().float().cpu().clamp(0, 1) * 255).to(torch.uint8)
    h.update(pixels.numpy().tobytes())
    return h.hexdigest()[:32]


def _frames(adapter) -> int | None:  # noqa: ANN001
    """The frame count the attack optimises (CogVideoX's ``opt_num_frames``), else the model's."""
    return getattr(adapter, "opt_num_frames", None) or getattr(adapter, "num_frames", None)


@torch.no_grad()
def reference_latent(
    adapter,  # noqa: ANN001
    x_clean: Tensor,
    seed: int,
    *,
    caption: str = "",
    cache_dir: str | Path | None = None,
) -> Tensor:
    """The clean video latent ``(1, F_lat, C_lat, h, w)`` of the target's own video of ``x_clean``.

    Raises:
        CapabilityError: the generated video's latent does not have :meth:`Adapter.latent_shape`.
        InputError: ``cache_dir`` exists and is not a folder.
    """
    from torch._subclasses.fake_tensor import is_fake

    if is_fake(x_clean):  # planning on fake tensors (stillguard.plan): nothing to hash or cache
        return _generate(adapter, x_clean, seed)
    key = reference_key(adapter, x_clean, seed, caption)
    if key in _MEMORY:
        _MEMORY.move_to_end(key)
        return _MEMORY[key].to(adapter.device, adapter.dtype)
    path = None
    if cache_dir:
        folder = Path(cache_dir)
        if folder.exists() and not folder.is_dir():
            raise InputError(f"the reference cache {folder} is not a folder")
        path = folder / f"reference-{key}.safetensors"
    lat = _read(path)
    if lat is None:
        lat = _generate(adapter, x_clean, seed)
        log.info("generated the reference video (seed %d) for the photo", seed)
        if path is not None:
            _write(path, lat)
    _MEMORY[key] = lat.cpu()
    while len(_MEMORY) > MEMORY_SLOTS:
        _MEMORY.popitem(last=False)
    return lat.to(adapter.device, adapter.dtype)


def _generate(adapter, x_clean: Tensor, seed: int) -> Tensor:  # noqa: ANN001
    video = adapter.generate(x_clean, seed=seed, num_frames=_frames(adapter))
    lat = adapter.encode_video(video.to(adapter.device, adapter.dtype)).detach()
    want = tuple(adapter.latent_shape(1))
    if tuple(lat.shape) != want:
        raise CapabilityError(
            f"the reference video of {adapter.registry_name!r} encodes to {tuple(lat.shape)}, "
            f"not the optimised latent shape {want}; use reference='static'"
        )
    return lat


def _read(path: Path | None) -> Tensor | None:
    if path is None or not path.is_file():
        return None
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    try:
        return load_file(str(path))["latent"]
    except (SafetensorError, KeyError, OSError) as err:
        log.warning("ignoring an unreadable cached reference %s: %s", path.name, err)
        return None


def _write(path: Path, lat: Tensor) -> None:
    from safetensors.torch import save

    from ..files import atomic_write_bytes

    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(path, save({"latent": lat.detach().cpu().contiguous()}))


def clear_memory() -> None:
    """Forget the in-memory references (tests)."""
    _MEMORY.clear()
