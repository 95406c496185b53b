"""One loaded model and what the page needs around it: limits, run configs, time estimates.

The model is loaded once when the server starts (``Session.load``), like a CLI batch. Every run
builds its :class:`~stillguard.app.config.RunConfig` with the same
:func:`~stillguard.app.config.build_config` as ``stillguard protect``, from a
:data:`~.choices.CHOICES` entry, the budget and the optional steps and seed.

Expected time: :meth:`Session.calibrate` times one PGD step per choice on a 512x512 image after one
warm-up step (the adapter resizes the photo to its own working size inside the loop, so the cost
of a step depends little on the photo's size); every real run then updates the estimate with its
measured seconds per step.

Outputs: each run writes into its own folder under ``out_root`` (a fresh temporary folder by
default); folders older than a day are deleted when a new run starts (:meth:`Session.prune`), and
gradio deletes its own copies after a day too.
"""

from __future__ import annotations

import logging
import shutil
import tempfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..app.config import RunConfig, build_config
from ..app.models import DEMO_MODELS
from ..bounds import check
from ..errors import InputError
from .choices import (
    BUDGET_MAX,
    BUDGET_MIN,
    CHOICES,
    DEFAULT_MAX_PHOTOS,
    DEFAULT_MAX_PIXELS,
    DEFAULT_MAX_UPLOAD_MB,
    offered,
)

log = logging.getLogger(__name__)
KEEP_SECONDS = 24 * 3600  # a run's files stay downloadable for a day


@dataclass(frozen=True)
class Limits:
    """What one request may ask of the server."""

    max_upload_mb: float = DEFAULT_MAX_UPLOAD_MB
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_photos: int = DEFAULT_MAX_PHOTOS

    def __post_init__(self) -> None:
        for name in ("max_upload_mb", "max_pixels", "max_photos"):  # ranges: stillguard.bounds
            check(name, getattr(self, name))


@dataclass
class Session:
    """The loaded model, its lock (one job at a time) and the server's output folder.

    Attributes:
        adapter: the loaded target model.
        target, model, device, dtype: how it was loaded (as on the command line).
        out_root: where the runs' outputs go (one sub-folder per run).
        limits: the request limits.
        lock: held while a job uses the model; the queue already runs one job at a time, the lock
            also covers a cancelled job still finishing its current step.
        seconds_per_step: measured seconds per PGD step, per cost class (:meth:`cost_key`: the
            method and the EOT draws; ``fast`` and ``default`` share one).
    """

    adapter: Any
    target: str
    model: str
    device: str = "cpu"
    dtype: str = "float32"
    out_root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="stillguard-web-")))
    limits: Limits = field(default_factory=Limits)
    lock: threading.Lock = field(default_factory=threading.Lock, repr=False)
    seconds_per_step: dict[str, float] = field(default_factory=dict)
    cancelled: int = 0

    @classmethod
    def load(
        cls,
        target: str = "cogvideox-i2v",
        model: str | None = None,
        *,
        device: str = "cpu",
        dtype: str = "float32",
        **kwargs: Any,
    ) -> Session:
        """Validate the target the way ``stillguard protect`` does, then load it once."""
        from ..adapters import load_adapter

        cfg = build_config("default", target=target, model=model, device=device, dtype=dtype)
        adapter = load_adapter(cfg.target_name, model=cfg.model, device=cfg.device, dtype=cfg.dtype)
        return cls(adapter, cfg.target_name, cfg.model, cfg.device, cfg.dtype, **kwargs)

    @property
    def demo(self) -> bool:
        """True for the tiny/toy model: what it protects against is not a real I2V model."""
        return self.model in DEMO_MODELS or not getattr(self.adapter, "is_real", True)

    @property
    def choices(self) -> dict[str, Any]:
        """The protections offered for this model (:func:`~.choices.offered`)."""
        return offered(self.target, self.model)

    def describe(self) -> str:
        return f"{self.target} · {self.model} · {self.device}"

    def config(
        self,
        choice: str,
        budget_255: float | None = None,
        steps: int | None = None,
        seed: int | None = None,
    ) -> RunConfig:
        """The run of a choice on this model (the same validation as the CLI).

        Args:
            choice: a key of :data:`CHOICES`.
            budget_255: L-infinity budget in 8-bit levels (4-16); ``None`` keeps the preset's.
            steps: PGD steps; ``None`` or 0 keeps the choice's.
            seed: ``None`` keeps the preset's.
        """
        if choice not in self.choices:
            raise InputError(
                f"unknown protection {choice!r}: choose one of {', '.join(self.choices)}"
            )
        c = CHOICES[choice]
        eps = None
        if budget_255 is not None:
            b = float(budget_255)
            if not BUDGET_MIN <= b <= BUDGET_MAX or b != int(b):
                raise InputError(
                    f"budget {budget_255}/255 is outside the page's range: choose a whole number "
                    f"from {BUDGET_MIN} to {BUDGET_MAX}"
                )
            eps = f"{int(b)}/255"
        return build_config(
            c.preset, target=self.target, model=self.model, device=self.device, dtype=self.dtype,
            eps=eps, steps=int(steps) if steps else c.steps, seed=None if seed is None else int(seed),
            sets=[f"method.refine={int(steps)}"] if steps and c.preset == "instant" else [],
        )  # fmt: skip

    def prune(self, max_age_s: float = KEEP_SECONDS) -> int:
        """Delete run folders in ``out_root`` older than ``max_age_s``; return how many."""
        now, gone = time.time(), 0
        for folder in self.out_root.glob("*"):
            try:
                if folder.is_dir() and now - folder.stat().st_mtime > max_age_s:
                    shutil.rmtree(folder)
                    gone += 1
            except OSError as e:  # another job is using it, or it went away: keep serving
                log.debug("could not prune %s: %s", folder, e)
        return gone

    def cost_key(self, choice: str) -> str:
        """Choices with the same method and EOT draws cost the same per step."""
        cfg = self.config(choice)
        draws = cfg.loop.eot_samples if cfg.loop.eot else 1
        return f"{cfg.method_name}|{sorted(cfg.method_options.items())}|eot={draws}"

    def calibrate(self) -> dict[str, float]:
        """Time one PGD step of each choice (after a warm-up step); fills ``seconds_per_step``."""
        import torch

        from ..loop import protect

        x = torch.rand(1, 3, 512, 512, generator=torch.Generator().manual_seed(0))
        with self.lock:
            for key in {self.cost_key(c): c for c in self.choices}.values():
                kw = self.config(key, steps=1).protect_kwargs()
                protect(x, self.adapter, **kw)  # warm-up (first call allocates, compiles kernels)
                t0 = time.perf_counter()
                protect(x, self.adapter, **kw)
                self.seconds_per_step[self.cost_key(key)] = time.perf_counter() - t0
        return dict(self.seconds_per_step)

    def expected_seconds(self, choice: str, steps: int | None = None) -> float | None:
        """Expected seconds to protect one photo with ``choice`` (``None`` before any timing)."""
        per = self.seconds_per_step.get(self.cost_key(choice))
        if per is None and self.seconds_per_step:  # not run yet: a step of another choice
            per = sum(self.seconds_per_step.values()) / len(self.seconds_per_step)
        if per is None:
            return None
        return per * (int(steps) if steps else self.config(choice).loop.steps)

    def record(self, choice: str, seconds: float, steps: int) -> None:
        """Fold a measured run into the estimate (running mean, the new run weighs a half)."""
        if steps <= 0:
            return
        per, key = seconds / steps, self.cost_key(choice)
        old = self.seconds_per_step.get(key)
        self.seconds_per_step[key] = per if old is None else 0.5 * (old + per)
