"""Golden outputs of every adapter family's tiny model: what the loss sees, pinned to a file.

For each case (a target and, where it has them, its tiny flavours) :func:`outputs` runs, for fixed
seeds: ``sample_timesteps``, ``encode`` (every tensor of the conditioning), ``denoise`` (pred,
target, x0, noisy) with a ``capture`` of the first hidden layer and the last attention layer open,
a 2-step ``rollout`` where the target has one, and a 2-step ``generate``. The results are kept in
``tests/data/goldens/<case>.safetensors``; ``tests/test_adapter_goldens.py`` recomputes them and
compares. Large tensors are stored as :func:`summary` (means over equal runs of the flattened
tensor, at most :data:`MAX_VALUES` values), so the files stay small while a change anywhere in a
tensor still moves its summary.

Regenerate deliberately (after a change that is *meant* to change the maths, or a torch/diffusers
upgrade that changes how the tiny models are initialised), from the repository root::

    PYTHONPATH=$PWD/src .venv/bin/python tests/goldens.py            # rewrite every case
    PYTHONPATH=$PWD/src .venv/bin/python tests/goldens.py svd ltx-i2v

and say why in the commit. Each file's metadata records the torch and diffusers versions it was
made with.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import torch

FOLDER = Path(__file__).resolve().parent / "data" / "goldens"
MAX_VALUES = 1024

#: case -> (registry name, keyword arguments of ``tiny``)
CASES: dict[str, tuple[str, dict[str, Any]]] = {
    "cogvideox-i2v": ("cogvideox-i2v", {}),
    "cogvideox-i2v-1.5": ("cogvideox-i2v", {"variant": "1.5"}),
    "svd": ("svd", {}),
    "wan-i2v": ("wan-i2v", {}),
    "wan-i2v-a14b": ("wan-i2v", {"flavour": "wan2.2-a14b"}),
    "wan-i2v-ti2v": ("wan-i2v", {"flavour": "wan2.2-ti2v"}),
    "ltx-i2v": ("ltx-i2v", {}),
    "hunyuan-i2v": ("hunyuan-i2v", {}),
    "hunyuan-i2v-token-replace": ("hunyuan-i2v", {"image_condition_type": "token_replace"}),
    "hunyuan15-i2v": ("hunyuan15-i2v", {}),
    "open-sora-1.2": ("open-sora-1.2", {}),
    "sana-video-i2v": ("sana-video-i2v", {}),
    "sana-video-i2v-implied": ("sana-video-i2v", {"linear_map": "implied"}),
    "dynamicrafter": ("dynamicrafter", {}),
    "ltx2-i2v": ("ltx2-i2v", {}),
    "cosmos2-i2v": ("cosmos2-i2v", {}),
    "skyreels-v2-i2v": ("skyreels-v2-i2v", {}),
    "skyreels-v2-i2v-df": ("skyreels-v2-i2v", {"flavour": "diffusion-forcing"}),
    "kandinsky5-i2v": ("kandinsky5-i2v", {}),
}


def image() -> torch.Tensor:
    """A blocky random 8-bit photo ``(1, 3, 80, 72)`` in [0, 1], not at any working size (so the
    resize inside ``encode`` is part of what is pinned).

    Built from exact operations only (a draw, rounding to 8 bit, repeats): its bytes are the same
    on every machine and thread count. That matters: ``ltx-i2v`` keys its posterior draw by the
    image's bytes, so one flipped bit of the input (an interpolation summing in another order)
    would change the whole draw."""
    g = torch.Generator().manual_seed(1234)
    low = (torch.rand(1, 3, 10, 9, generator=g) * 255).round() / 255
    return low.repeat_interleave(8, -2).repeat_interleave(8, -1)


def summary(t: torch.Tensor) -> torch.Tensor:
    """``t`` as float32; above :data:`MAX_VALUES` values, the means of equal runs of its flattened
    values (adaptive average pooling), so any changed region still moves some value."""
    flat = t.detach().float().flatten()
    if flat.numel() <= MAX_VALUES:
        return flat.clone()
    return torch.nn.functional.adaptive_avg_pool1d(flat[None, None], MAX_VALUES)[0, 0]


def build(case: str) -> Any:
    from stillguard.adapters import ADAPTERS

    name, kwargs = CASES[case]
    return ADAPTERS.get(name).tiny(seed=0, device="cpu", **kwargs)


@torch.no_grad()
def outputs(case: str) -> dict[str, torch.Tensor]:
    """Every pinned output of ``case``'s tiny model, summarised (see the module docstring)."""
    a = build(case)
    x = image()
    out: dict[str, torch.Tensor] = {}
    g = torch.Generator().manual_seed(0)
    t = a.sample_timesteps(2, g)[:1]
    noise = torch.randn(a.latent_shape(1), generator=g)
    out["sample_timesteps"] = a.sample_timesteps(4, torch.Generator().manual_seed(7))
    cond = a.encode(x)
    out["encode.image_latents"] = cond.image_latents
    out["encode.first_latent"] = cond.first_latent
    if cond.image_embeds is not None:
        out["encode.image_embeds"] = cond.image_embeds
    for k, v in sorted(cond.extra.items()):
        out[f"encode.extra.{k}"] = v
    hidden, attention = a.layer_names("hidden")[:1], a.layer_names("attention")[-1:]
    with a.capture(hidden=hidden, attention=attention, mode="exact") as cap:
        d = a.denoise(x, t, noise)
    for k in ("pred", "target", "x0", "noisy"):
        out[f"denoise.{k}"] = getattr(d, k)
    out["capture.hidden"] = cap.hidden[hidden[0]][0]
    out["capture.attention"] = cap.attention[attention[0]][0]
    if "rollout" in a.capabilities:
        out["rollout"] = a.rollout(x, noise, 2)
    out["generate"] = a.generate(x, seed=3, num_inference_steps=2)
    return {k: summary(v) for k, v in out.items()}


def file(case: str) -> Path:
    return FOLDER / f"{case}.safetensors"


def write(case: str) -> Path:
    import diffusers
    from safetensors.torch import save_file

    FOLDER.mkdir(parents=True, exist_ok=True)
    meta = {"torch": torch.__version__, "diffusers": diffusers.__version__, "case": case}
    save_file(outputs(case), str(file(case)), metadata=meta)
    return file(case)


def read(case: str) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(file(case)))


if __name__ == "__main__":
    for c in sys.argv[1:] or list(CASES):
        if c not in CASES:
            sys.exit(f"error: unknown case {c!r}: one of {', '.join(CASES)}")
        print(f"wrote {write(c)}")
