"""Every number a user can give stillguard, with its range and the reason for it: one table.

Each command checks its numeric options against :data:`BOUNDS` before any work (before a model
loads, a photo is read or a plan is built), and the library checks the same table where a number
arrives (:class:`~stillguard.settings.LoopConfig`, plug-in options, model settings, the planner,
:func:`~stillguard.images.load_image`), so a typo such as ``--batch-size 100000000`` is one
``error:`` line that says the range, never an allocation of gigabytes.

The bounds are sanity limits, far outside what a run needs; the comment above each entry says where
its numbers come from, and its ``why`` (printed with the error) says what the number is.

Choices: a whole-number option refuses ``1.5`` and ``True`` rather than rounding; a float option
refuses NaN and infinities; a numeric plug-in option without an entry of its own gets
:data:`PLUGIN_DEFAULT` (finite, at most a million either way), so no number goes unchecked.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

from .errors import InputError


@dataclass(frozen=True)
class Bound:
    """``low <= value <= high``; ``kind`` is ``int`` (whole numbers only) or ``float``."""

    low: float
    high: float
    kind: type
    why: str


GIB = 1 << 30

BOUNDS: dict[str, Bound] = {
    # ------------------------------------------------------------------ the loop ([protect])
    # the papers run 100 (Vid-Freeze) to a few hundred PGD steps, the presets 3-200; 100,000 steps
    # of a real model would take weeks on one GPU. 0 is the noise baseline (start point only).
    "steps": Bound(0, 100_000, int, "PGD steps per photo (the presets use 3-200)"),
    # each draw is one more forward and backward pass per step (time grows linearly); the presets
    # use 1, and 64 draws already make a step 64 times slower.
    "eot_samples": Bound(1, 64, int, "transform draws per step, each one more forward+backward"),
    # torch.Generator.manual_seed takes a 64-bit integer; negatives refused so a seed is one number.
    "seed": Bound(0, 2**63 - 1, int, "seeds are 64-bit integers"),
    # ------------------------------------------------------------------ a run (protect, verify)
    # photos of one size per forward/backward pass; memory grows with each (plans: a real target
    # fits a handful on an 80 GB GPU), and up to 2 x N decoded photos wait in host memory.
    "batch_size": Bound(1, 64, int, "photos per forward/backward pass; memory grows with each"),
    # one Ray actor per worker, each loading the model once: past the cluster's GPUs/CPUs they
    # only queue; a typo of 10**8 would make Ray schedule 10**8 actors.
    "workers": Bound(1, 1024, int, "Ray workers, each loading the model once"),
    # no single node has more than a few hundred cores.
    "cpus_per_worker": Bound(1, 1024, int, "CPU cores per Ray worker"),
    # low: a photo under 16x16 is refused anyway (images.MIN_SIDE), so a lower limit refuses
    # every photo; high: Pillow refuses anything over twice its MAX_IMAGE_PIXELS (89,478,485) as a
    # decompression bomb, whatever this limit says.
    "max_pixels": Bound(256, 178_956_970, int, "the largest photo accepted, in pixels"),
    # verify generates a clean, a protected and a noise video per seed and per purification.
    "seed_count": Bound(1, 32, int, "generation seeds, each three videos per purification"),
    # the planner adds an ASSUMED 1 GiB for the CUDA context (plan.gpus.CONTEXT_BYTES), so under
    # 2 GiB nothing fits; 2 TiB is ten times the largest GPU sold today (192 GB).
    "gpu_memory": Bound(2 * GIB, 2048 * GIB, int, "the memory of one GPU"),
    # ------------------------------------------------------------------ the web page
    # stillguard refuses files over 1 GiB anyway (images.MAX_FILE_BYTES); a 10 kB limit refuses
    # nearly every photo.
    "max_upload_mb": Bound(0.01, 1024, float, "the largest upload, in MB"),
    # photos of one run are protected one after another while the page waits (Default: about
    # 15-30 s each on a CPU), so 1,000 is hours of one person's queue.
    "max_photos": Bound(1, 1000, int, "photos in one run of the page"),
    "port": Bound(1, 65535, int, "a TCP port"),
    # ------------------------------------------------------------------ model settings
    # (stillguard.json, --set target.options.*, plan rungs): the published checkpoints sit far
    # inside them (CogVideoX-5b-I2V: 480x720, 49 frames, 50 steps; SVD-xt: 576x1024, 25 frames,
    # 25 steps; their model cards); they stop a typo from asking for a petabyte.
    "height": Bound(16, 4096, int, "pixels (published I2V models use far less)"),
    "width": Bound(16, 4096, int, "pixels (published I2V models use far less)"),
    "num_frames": Bound(1, 1024, int, "video frames (published I2V models use far less)"),
    "opt_num_frames": Bound(1, 1024, int, "attacked frames (published I2V models use far less)"),
    "num_inference_steps": Bound(1, 1000, int, "sampler steps (published models use 25-50)"),
    "decode_chunk_size": Bound(1, 1024, int, "frames decoded at once"),
    "fps": Bound(1, 240, int, "frames per second"),
    "motion_bucket_id": Bound(0, 1023, int, "SVD's motion conditioning (default 127)"),
    "guidance_scale": Bound(0.0, 100.0, float, "classifier-free guidance (models use 1-10)"),
    "min_guidance_scale": Bound(0.0, 100.0, float, "classifier-free guidance (models use 1-10)"),
    "max_guidance_scale": Bound(0.0, 100.0, float, "classifier-free guidance (models use 1-10)"),
    "noise_aug_strength": Bound(0.0, 10.0, float, "SVD's conditioning noise (default 0.02)"),
    # ------------------------------------------------------------------ plug-in options (--set)
    # sampled query rows per attention map: 65,536 is more than every token of CogVideoX-5b's
    # 49-frame video (17,550), so beyond it only memory grows.
    "max_queries": Bound(1, 65_536, int, "sampled attention rows (memory grows with them)"),
    # unrolled sampler steps (0: the model's own count); memory grows with each, and no sampler
    # has more than 1000 steps.
    "unroll": Bound(0, 1000, int, "unrolled sampler steps (memory grows with each)"),
    # amortized protection: PGD steps after the protector's pass, as many as a plain run may take
    "refine": Bound(0, 100_000, int, "PGD steps after the protector's one pass"),
    # Anti-I2V's term balance: loss calls that set the weights, and the diagnostic's period
    # (0: off); both count loss calls, which never exceed the steps
    "balance_steps": Bound(1, 100_000, int, "loss calls that set Anti-I2V's term weights"),
    "diagnose_every": Bound(0, 100_000, int, "loss calls between two term diagnostics (0: off)"),
    # the seed of Anti-I2V's reference video (a generation seed)
    "reference_seed": Bound(0, 2**63 - 1, int, "seeds are 64-bit integers"),
    # attacked attention layers (plan rung depth=N): the largest published denoisers have 60.
    "depth": Bound(1, 1000, int, "attacked attention layers"),
    # denoiser block indices: the largest published denoisers have 60 blocks.
    "irc_ref": Bound(0, 1000, int, "a denoiser block index"),
    "irc_last": Bound(1, 1000, int, "denoiser blocks pulled onto irc_ref"),
    # DCT block side in pixels (JPEG's is 8); the space refuses < 2.
    "block": Bound(2, 512, int, "DCT block side in pixels"),
    # u + v < keep: 2 x block - 1 frees every coefficient of a 512 block.
    "keep": Bound(1, 1024, int, "DCT coefficients kept per block (u + v < keep)"),
    # own budgets of the Lab and DCT spaces; the RGB box binds anyway (Lab a/b span ~256 units,
    # a DCT coefficient of a 512 block of [0, 1] pixels is at most 512).
    "eps_ab": Bound(0.0, 256.0, float, "the Lab space's own a/b budget"),
    "eps_coef": Bound(0.0, 512.0, float, "the DCT space's own coefficient budget"),
    # hinge margins on mean squared errors of [0, 1] maps.
    "tau_attention": Bound(0.0, 100.0, float, "a hinge margin"),
    "tau_diffusion": Bound(0.0, 100.0, float, "a hinge margin"),
    # ensemble members' weights (target.weights).
    "target_weight": Bound(1e-6, 1e6, float, "an ensemble member's weight (> 0)"),
}
#: any ``*_weight`` plug-in option: a loss term's weight; 0 turns it off, a negative one would
#: reward the opposite, Mist's default is 1e4.
WEIGHT = Bound(0.0, 1e6, float, "a loss term's weight (0 turns it off)")
#: any other numeric plug-in option: finite, and a typo cannot ask for 1e300.
PLUGIN_DEFAULT = Bound(-1e6, 1e6, float, "a plug-in option")


def bound_of(name: str) -> Bound:
    """The bound of a setting: its own entry, else the weight rule, else :data:`PLUGIN_DEFAULT`."""
    if name in BOUNDS:
        return BOUNDS[name]
    return WEIGHT if name.endswith("_weight") else PLUGIN_DEFAULT


def _num(x: float) -> str:
    return f"{x:g}" if isinstance(x, float) and not float(x).is_integer() else f"{int(x)}"


def range_text(b: Bound) -> str:
    """``[1, 64]``-style text of a bound."""
    return f"[{_num(b.low)}, {_num(b.high)}]"


def check(name: str, value: Any, label: str | None = None) -> Any:
    """``value`` if it is a number of the right kind inside ``BOUNDS[name]``, else one clear error.

    Args:
        name: a key of :data:`BOUNDS` (or a plug-in option name, see :func:`bound_of`).
        value: the number as given (strings are not parsed here: a front parses its text first).
        label: how the user wrote it: ``"--batch-size"`` gives ``--batch-size 0 is outside ...``;
            ``"target.options.height"`` gives ``target.options.height=0 is outside ...``.
            Default: ``name``.

    Raises:
        InputError: not a number of that kind, or out of range; the line names the range and why.
    """
    b = bound_of(name)
    label = label or name
    shown = f"{label} {value}" if label.startswith("-") else f"{label}={value!r}"
    whole = "a whole number" if b.kind is int else "a number"
    ok_type = (
        isinstance(value, int) if b.kind is int else isinstance(value, (int, float))
    ) and not isinstance(value, bool)
    if not ok_type or (b.kind is float and not math.isfinite(value)):
        raise InputError(f"{shown} is not {whole} in {range_text(b)}: {b.why}")
    if not b.low <= value <= b.high:
        raise InputError(f"{shown} is outside {range_text(b)}: {b.why}")
    return value


def check_all(values: dict[str, tuple[str, Any]]) -> None:
    """:func:`check` each ``{label: (name, value)}`` whose value is not ``None`` (a front's options)."""
    for label, (name, value) in values.items():
        if value is not None:
            check(name, value, label)


#: the generation settings of a model (``stillguard.json``, ``--set target.options.*``, plan rungs)
SETTINGS = (
    "height", "width", "num_frames", "opt_num_frames", "num_inference_steps", "decode_chunk_size",
    "fps", "motion_bucket_id", "guidance_scale", "min_guidance_scale", "max_guidance_scale",
    "noise_aug_strength",
)  # fmt: skip


def check_settings(settings: dict[str, Any], where: str) -> None:
    """Refuse generation settings (:data:`SETTINGS`) of the wrong type or out of range.

    ``where`` names their source in the error (``target.options``, a ``stillguard.json`` path).
    """
    for key, value in settings.items():
        if key in SETTINGS and value is not None:
            try:
                check(key, value, f"{where}: {key}")
            except InputError as e:
                raise InputError(f"{e}; fix or remove that setting") from None
