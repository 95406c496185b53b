"""The README's main job: protect the bundled sample photo against the shipped toy I2V model and
show, with measurements, that the protected photo's video stays still.

Steps: check everything first (:func:`check_demo`: settings, a writable output folder, the model
on this machine; nothing is written before) -> load the toy CogVideoX-family model (``model="toy"``, shipped weights, offline) -> protect
``assets/sample.png`` with the demo preset -> save the 8-bit PNG + sidecar -> generate clean and
protected videos with the same seeds, also after JPEG/resize/blur -> metrics, verdict and an HTML
report. The toy is a demonstration target: protection computed on it does not protect a photo
against real I2V models (see the README's threat model).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

logger = logging.getLogger(__name__)

#: purifications the demo checks (a subset of the full evaluation, to stay fast on a laptop CPU)
DEMO_TRANSFORMS = ("identity", "jpeg:75", "resize:0.75", "blur:1.0")


def sample_image_path() -> Path:
    """Path of the bundled sample photo (NASA astronaut portrait, public domain)."""
    return Path(str(resources.files("stillguard") / "assets" / "sample.png"))


@dataclass
class DemoResult:
    """Where the demo wrote its files, and what it measured."""

    out_dir: Path
    protected_path: Path
    report_path: Path
    table: str
    summary: Any
    protected: Any
    report: Any


def check_demo(
    out_dir: str | Path, *, model: str = "toy", preset: str = "demo", **flags: Any
) -> Any:
    """Everything the demo checks before any work: settings, output folder, model on this machine.

    ``flags`` are :func:`~stillguard.app.config.build_config` keywords (``steps``, ``seed``, ...).

    Returns:
        The validated :class:`~stillguard.app.config.RunConfig`.
    """
    from .config import build_config
    from .models import check_model_available
    from .outputs import check_writable

    cfg = build_config(preset, model=model, **{k: v for k, v in flags.items() if v is not None})
    check_writable(out_dir)
    check_writable(Path(out_dir) / "report")
    check_model_available(cfg.model)
    return cfg


def run_demo(
    out_dir: str | Path = "stillguard-demo",
    *,
    image: str | Path | None = None,
    model: str = "toy",
    method: str | None = None,
    preset: str = "demo",
    steps: int | None = None,
    seed: int = 0,
    seeds: tuple[int, ...] = (0, 1),
    transforms: tuple[str, ...] = DEMO_TRANSFORMS,
    callback: Callable[[Any], None] | None = None,
    stage: Callable[[str], None] | None = None,
) -> DemoResult:
    """Run the end-to-end demo and return what it measured.

    Args:
        out_dir: folder for the protected PNG, its sidecar and the HTML report.
        image: photo to protect (default: the bundled sample).
        model: ``"toy"`` (shipped weights) or ``"tiny"`` (random weights, plumbing only).
        method: protection method name (``None``: the preset's).
        preset: preset whose ``[protect]`` and ``[method]`` sections are used.
        steps: override the preset's PGD step count.
        seed: protection seed.
        seeds: generation seeds of the evaluation.
        transforms: purifications evaluated (``identity`` = the saved PNG as is).
        callback: progress events of the protection loop.
        stage: called with a short description before each stage (for the CLI).
    """
    from ..measure.evaluate import evaluate
    from ..measure.report import write_report
    from .models import load_target
    from .run import BatchItem, protect_one
    from .run.unit import read

    say = stage or (lambda msg: logger.info(msg))
    cfg = check_demo(out_dir, model=model, preset=preset, method=method, steps=steps, seed=seed)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    src = Path(image) if image is not None else sample_image_path()
    png = out / f"{src.stem}.protected.png"
    item = BatchItem(src, png, png.with_suffix(".json"))
    loaded = read(src)

    say(f"loading the {model} model")
    adapter = load_target(cfg.target_name, cfg.model, cfg.device, cfg.dtype, cfg.target_options)
    say(f"protecting {src.name} with {cfg.method_name} ({cfg.loop.steps} steps)")
    done = protect_one(item, cfg, adapter, loaded, callback=callback)  # the one unit of work
    result, protected_path = done.protected, png

    say("generating clean and protected videos (same seeds) and measuring them")
    report = evaluate(
        result.original,
        protected_path,
        adapter,
        seeds=seeds,
        transforms=transforms,
        eps=result.config.get("eps", 8 / 255),
    )
    report_path = write_report(report, out / "report", protected_result=result)
    return DemoResult(
        out_dir=out,
        protected_path=protected_path,
        report_path=report_path,
        table=report.table(),
        summary=report.summary,
        protected=result,
        report=report,
    )
