"""protect(): the one optimisation loop (sign-gradient PGD with EOT), and the Protected result.

Choices (documented here once; the papers do not fix them):
    * the input is rounded to 8 bits first: the "original" is what a PNG of the input holds, and the
      budget is guaranteed against it on the saved file;
    * the step size is a fraction of the space's own budget, going from ``step_size`` to
      ``final_step_size`` over the run (``cosine``, ``linear``) or staying at ``step_size``
      (``constant``); large steps explore, small final steps settle;
    * the **last iterate** is returned, not the best one: each step's loss is a one-sample estimate
      at a random timestep and noise, so the lowest logged value mostly picks a lucky draw, and the
      decaying step size already makes the last iterate stable;
    * EOT: draw ``k`` of step ``i`` applies ONE of the given transforms, taken round-robin
      (``(i * eot_samples + k) mod n``), with its random parameters from the run's generator; the
      loss is the mean over the ``eot_samples`` draws (gradients accumulated draw by draw, so memory
      does not grow with ``eot_samples``); use the ``random`` transform to pick at random instead;
    * every random draw (start point, timesteps, noise, transforms, query subsets) comes from one
      CPU ``torch.Generator`` seeded with ``seed``: same inputs and seed give the same PNG bytes;
    * after the loop the image is rounded to 8 bits and clipped into ``round(eps*255)`` levels of
      the original, so ``|png - original|_inf <= round(eps*255)/255`` holds on the saved file.
"""

from __future__ import annotations

import hashlib
import logging
import math
import os
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from torch import Tensor

from .errors import InputError, StillguardError
from .versions import package_versions

log = logging.getLogger(__name__)

SCHEDULES = ("constant", "cosine", "linear")
TOY_WARNING = (
    "protected against the tiny/toy model only: this does not protect against real image-to-video "
    "models; run protect() with a real adapter (e.g. load_adapter('cogvideox-i2v', model=...))"
)


@dataclass
class ProgressEvent:
    """Sent to ``protect(callback=...)`` after every step; ``step`` counts from 1 to ``steps``."""

    step: int
    steps: int
    loss: float
    terms: dict[str, float]
    elapsed: float


@dataclass
class Protected:
    """The result of :func:`protect`.

    Attributes:
        original: the input rounded to 8 bits, ``(1,3,H,W)`` in [0,1].
        image: the protected image, 8-bit valued, ``(1,3,H,W)`` in [0,1].
        delta: ``image - original``.
        losses: loss per step (mean over EOT draws); empty for non-optimising methods.
        terms: named loss terms per step.
        config: everything needed to reproduce the run (JSON-able).
        seconds: wall time of :func:`protect`.
    """

    original: Tensor
    image: Tensor
    delta: Tensor
    losses: list[float] = field(default_factory=list)
    terms: list[dict[str, float]] = field(default_factory=list)
    config: dict[str, Any] = field(default_factory=dict)
    seconds: float = 0.0

    def to_uint8(self) -> Tensor:
        """The protected image as 8-bit pixels. Shape: ``(H, W, 3)`` uint8."""
        return _uint8(self.image)

    def metrics(self) -> dict[str, Any]:
        """PSNR, SSIM, L-infinity (8-bit steps) and L2 of the protected image vs the original.

        SSIM is ``None`` when :mod:`stillguard.metrics` cannot be imported (OpenCV missing).
        """
        try:
            from .metrics import imperceptibility

            m = imperceptibility(self.original, self.image)
            out: dict[str, Any] = {k: m[k] for k in ("psnr", "ssim", "linf_255", "l2")}
        except ImportError:  # the [eval] extra is not installed
            d = (self.image - self.original).double()
            mse = float(d.pow(2).mean())
            out = {
                "psnr": math.inf if mse == 0 else -10 * math.log10(mse),
                "ssim": None,
                "linf_255": float(d.abs().max() * 255),
                "l2": float(d.flatten().norm()),
            }
        out["psnr"] = None if math.isinf(out["psnr"]) else out["psnr"]  # JSON has no inf
        out["linf_255"] = int(round(out["linf_255"]))
        return out

    def sidecar(self, png: Path, **extra: Any) -> dict[str, Any]:
        """The JSON sidecar of a saved PNG: config, hashes, imperceptibility, loss history.

        ``extra`` entries (e.g. the batch runner's input facts) are merged in at the top level.
        """
        from .io import sha256_file

        real = bool((self.config.get("adapter") or {}).get("real_model", False))
        try:
            metrics = self.metrics()
        except ImportError:  # the [eval] extra is not installed
            metrics = {}
        side: dict[str, Any] = {
            "stillguard": self.config.get("versions", {}).get("stillguard"),
            "file": png.name,
            "real_model": real,
            "input_pixels_sha256": hashlib.sha256(
                _uint8(self.original).numpy().tobytes()
            ).hexdigest(),
            "output_pixels_sha256": hashlib.sha256(self.to_uint8().numpy().tobytes()).hexdigest(),
            "output_file_sha256": sha256_file(png),
            "budget_255": self.config.get("budget_255"),
            **metrics,
            "seconds": round(self.seconds, 3),
            "config": self.config,
            "losses": self.losses,
            "terms": self.terms,
        }
        if not real:
            side["warning"] = TOY_WARNING
        side.update(extra)
        return side

    def save(
        self,
        path: str | os.PathLike[str],
        *,
        source: Any = None,
        keep_metadata: bool = False,
        extra: dict[str, Any] | None = None,
    ) -> Path:
        """Write the 8-bit PNG and its JSON sidecar (``path.with_suffix('.json')``), each atomically.

        Args:
            path: output ``.png`` (a lossy format would break the budget guarantee).
            source: the :class:`stillguard.io.LoadedImage` the input came from: the output is refused
                if it would replace that file, and its alpha channel is re-attached unchanged.
            keep_metadata: copy the source's EXIF (default: strip all metadata, for privacy).
            extra: more sidecar entries.

        Returns:
            The PNG path.
        """
        from .io import save_png, write_json

        path = Path(path)
        if path.suffix.lower() != ".png":
            raise InputError(
                f"cannot save the protected image as {path.name!r}: use a .png name; a lossy format "
                "(JPEG, WebP) would change the perturbation and break the budget guarantee"
            )
        if not path.parent.is_dir():
            raise InputError(f"folder {str(path.parent)!r} does not exist; create it first")
        save_png(self.image, path, source=source, keep_metadata=keep_metadata)
        side = path.with_suffix(".json")
        write_json(side, self.sidecar(path, **(extra or {})))
        log.info("saved %s and %s", path, side.name)
        return path


def _uint8(x: Tensor) -> Tensor:
    return torch.round(x.detach()[0].clamp(0, 1) * 255).to(torch.uint8).permute(1, 2, 0).cpu()


def step_fraction(it: int, steps: int, start: float, end: float, schedule: str) -> float:
    """Step size of step ``it`` (0-based) as a fraction of the space's own budget."""
    if schedule == "constant" or steps <= 1:
        return start
    p = it / (steps - 1)
    if schedule == "linear":
        return start + (end - start) * p
    if schedule == "cosine":
        return end + (start - end) * 0.5 * (1 + math.cos(math.pi * p))
    raise InputError(f"unknown schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}")


def _check_image(image: Tensor) -> Tensor:
    if not torch.is_tensor(image):
        raise InputError(
            f"image must be a torch tensor (1,3,H,W) in [0,1], got {type(image).__name__}; "
            "load files with stillguard.io"
        )
    if image.ndim == 3:
        image = image.unsqueeze(0)
    if image.ndim != 4 or image.shape[:2] != (1, 3):
        raise InputError(f"image must have shape (1,3,H,W), got {tuple(image.shape)}")
    if not image.is_floating_point():
        raise InputError(
            f"image must be float in [0,1], got {image.dtype}; divide 8-bit data by 255"
        )
    lo, hi = float(image.min()), float(image.max())
    if not (math.isfinite(lo) and math.isfinite(hi)) or lo < 0 or hi > 1:
        raise InputError(f"image values are in [{lo:.3g}, {hi:.3g}], expected [0, 1]")
    return image.detach().float()


def protect(
    image: Tensor,
    adapter: Any,
    method: str | Any = "vid-freeze",
    *,
    space: str | Any | None = None,
    eps: float | None = None,
    steps: int = 100,
    step_size: float = 0.25,
    final_step_size: float = 0.02,
    schedule: str = "cosine",
    random_start: bool = True,
    eot: Sequence[str | Any] = (),
    eot_samples: int = 1,
    seed: int = 0,
    method_options: dict[str, Any] | None = None,
    space_options: dict[str, Any] | None = None,
    callback: Callable[[ProgressEvent], None] | None = None,
) -> Protected:
    """Protect one image against an image-to-video model.

    Args:
        image: the photo, any resolution (the adapter resizes inside its differentiable encode).
        adapter: the target model (an :class:`~stillguard.adapters.base.Adapter`); may be ``None``
            only for methods that do not optimise (``noise``).
        method: a registered method name (built with ``method_options``) or a method object.
        space: a registered space name (built with ``space_options``) or object; ``None`` takes the
            method's ``default_space``.
        eps: RGB L-infinity budget in [0, 1] units (e.g. ``8/255``); ``None`` keeps the space's default.
        steps: PGD steps.
        step_size, final_step_size: first and last step as a fraction of the space's own budget.
        schedule: ``"constant"``, ``"cosine"`` or ``"linear"`` decay between the two.
        random_start: start from a random point inside the budget.
        eot: transforms (spec strings like ``"jpeg:75"`` or objects) for Expectation over
            Transformation; empty for none.
        eot_samples: transform draws averaged per step (ignored without ``eot``).
        seed: seeds every random draw of the run.
        method_options, space_options: options for methods/spaces given by name.
        callback: called with a :class:`ProgressEvent` after every step.
    Returns:
        :class:`Protected`.
    Raises:
        CapabilityError: the method needs something the adapter does not offer (before any work).
        InputError: bad image or option.
    Shape:
        ``image`` ``(1,3,H,W)`` (or ``(3,H,W)``) in [0,1] -> ``Protected.image`` ``(1,3,H,W)``.
    """
    from . import plugins  # noqa: F401  (fills the registries)
    from .registry import METHODS, SPACES
    from .transforms import parse_transform

    t_start = time.perf_counter()
    if steps < 0 or eot_samples < 1:
        raise InputError(f"steps must be >= 0 and eot_samples >= 1, got {steps} and {eot_samples}")
    if schedule not in SCHEDULES:
        raise InputError(f"unknown schedule {schedule!r}: choose one of {', '.join(SCHEDULES)}")
    if not (0 < step_size <= 1 and 0 < final_step_size <= 1):
        raise InputError("step_size and final_step_size are fractions of the budget, in (0, 1]")
    m = METHODS.build(method, **(method_options or {}))
    if adapter is None and m.optimizes:
        raise InputError(f"method {m.registry_name!r} needs a target model; pass an adapter")
    if adapter is not None:
        m.check(adapter)
    sp_opts = dict(space_options or {})
    given_space = space if space is not None else m.default_space
    if eps is not None and isinstance(given_space, str):
        sp_opts["eps"] = float(eps)
    sp = SPACES.build(given_space, **sp_opts)
    if eps is not None and not math.isclose(sp.eps, float(eps)):
        raise InputError(
            f"eps={eps} disagrees with the space object's eps={sp.eps}; set it in one place"
        )
    transforms = [parse_transform(t) if isinstance(t, str) else t for t in eot]

    device = adapter.device if adapter is not None else torch.device("cpu")
    x = (torch.round(_check_image(image) * 255) / 255).to(device)
    gen = torch.Generator().manual_seed(int(seed))
    budget = round(sp.eps * 255)
    config: dict[str, Any] = {
        "method": m.describe(),
        "space": sp.describe(),
        "adapter": adapter.describe() if adapter is not None else None,
        "eps": sp.eps,
        "budget_255": budget,
        "steps": steps if m.optimizes else 0,
        "step_size": step_size,
        "final_step_size": final_step_size,
        "schedule": schedule,
        "random_start": random_start,
        "eot": [getattr(t, "label", repr(t)) for t in transforms],
        "eot_samples": eot_samples,
        "seed": int(seed),
        "image_size": [int(x.shape[-2]), int(x.shape[-1])],
        "versions": package_versions(),
    }
    losses: list[float] = []
    terms_log: list[dict[str, float]] = []

    if not m.optimizes:
        adv = m.perturb(x, sp.eps, gen)
    else:
        m.setup(adapter, x, gen)
        param = sp.init(x, gen, random_start)
        draws = eot_samples if transforms else 1
        for it in range(steps):
            param = param.detach().requires_grad_(True)
            grad = torch.zeros_like(param)
            total, terms = 0.0, {}
            for k in range(draws):
                xi = sp.to_image(x, param)
                if transforms:
                    xi = transforms[(it * draws + k) % len(transforms)](xi, gen)
                loss, tm = m.loss(adapter, xi, gen)
                if not torch.isfinite(loss):
                    raise StillguardError(
                        f"method {m.registry_name!r} gave a non-finite loss at step {it + 1}; try a "
                        "smaller eps or float32 (dtype=torch.float32) on the adapter"
                    )
                (g,) = torch.autograd.grad(loss / draws, param)
                grad += g
                total += float(loss.detach()) / draws
                for key, val in tm.items():
                    terms[key] = terms.get(key, 0.0) + float(val) / draws
            frac = step_fraction(it, steps, step_size, final_step_size, schedule)
            param = sp.project(x, sp.step(param.detach(), grad, frac, it))
            losses.append(total)
            terms_log.append(terms)
            log.debug("step %d/%d loss %.6g %s", it + 1, steps, total, terms)
            if callback is not None:
                callback(ProgressEvent(it + 1, steps, total, terms, time.perf_counter() - t_start))
        with torch.no_grad():
            adv = sp.to_image(x, param.detach())

    # quantise, then clip into the 8-bit box around the 8-bit original
    x8 = torch.round(x * 255)
    a8 = torch.round(adv.detach().clamp(0, 1) * 255)
    a8 = torch.minimum(torch.maximum(a8, x8 - budget), x8 + budget).clamp(0, 255)
    out = (a8 / 255).cpu()
    orig = (x8 / 255).cpu()
    seconds = time.perf_counter() - t_start
    if adapter is not None and not adapter.is_real:
        log.warning(TOY_WARNING)
    log.info(
        "protected with %s in %.1fs (%d steps, final loss %s)",
        m.registry_name,
        seconds,
        len(losses),
        f"{losses[-1]:.6g}" if losses else "n/a",
    )
    return Protected(orig, out, out - orig, losses, terms_log, config, seconds)
