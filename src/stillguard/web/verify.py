"""The page's Verify job, without gradio: what ``stillguard verify`` measures, shown as pictures.

:func:`stillguard.evaluate` generates the clean video (from the original) and the protected video
(from the protected PNG) with the same seeds, also after JPEG 75, plus the same-budget noise
baseline, and gives the motion table and the verdicts. The page adds two animated GIFs of the
first seed: clean | protected side by side, and clean | protected-after-JPEG-75 side by side.

Choices:
    * seeds ``(0, 1)`` (the CLI's default) and the purifications ``identity`` and ``jpeg:75`` only,
      so that a check takes seconds on the toy model; the full set is ``stillguard verify``;
    * :func:`evaluate` keeps the videos of the first purification only, so the JPEG-75 video of
      the first seed is generated once more here through the transform's exact ``real()``
      purification and the same seed: the same video the table measured;
    * the GIFs are enlarged with nearest-neighbour sampling to at least 256 pixels high (the toy
      model's videos are 64x64) and play at 8 frames per second.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import InputError
from ..images import load_image
from .choices import VERIFY_SEEDS, VERIFY_TRANSFORMS
from .session import Session
from .work import Cancelled, Upload, user_message

GIF_HEIGHT = 256


@dataclass
class VerifyResult:
    """What a Verify job measured and drew."""

    verdicts: dict[str, str]  # purification label -> verdict of the protected image
    noise_verdicts: dict[str, str]  # the same-budget noise baseline's verdicts
    table: str  # the text table `stillguard verify` prints
    videos: dict[str, Path]  # "identity" / "jpeg:75" -> side-by-side GIF
    report: Path  # report.json (+ table.txt beside it)
    demo: bool


def verify_pair(
    session: Session,
    original: Upload,
    protected: Upload,
    budget_255: float,
    out_dir: Path,
    *,
    on_video: Callable[[int, int], None] | None = None,
    stopped: Callable[[], bool] = lambda: False,
) -> VerifyResult:
    """Measure ``protected`` against ``original`` on the session's model.

    Args:
        session: the loaded model.
        original, protected: the photo and its protected PNG (the same size).
        budget_255: the protection's budget (for the noise baseline), in 8-bit levels.
        out_dir: where the GIFs and the report go (created).
        on_video: called as ``on_video(done, total)`` after each generated video.
        stopped: polled after every video; True raises :class:`~.work.Cancelled`.

    Raises:
        InputError: a bad file, or two images of different sizes (the CLI's words).
        Cancelled: the job was stopped.
    """
    import torch

    from ..measure.evaluate import evaluate
    from ..measure.media import scale_for, side_by_side, write_gif
    from ..tensors import quantize8
    from ..transforms import parse_transform

    images = []
    for up in (original, protected):
        try:
            images.append(load_image(up.path, max_pixels=session.limits.max_pixels).tensor)
        except InputError as e:
            raise InputError(user_message(e, up)) from None
    a, b = images
    if a.shape != b.shape:
        raise InputError(
            f"{original.name} is {a.shape[-1]}x{a.shape[-2]} but {protected.name} is "
            f"{b.shape[-1]}x{b.shape[-2]}; pass the original the protected image was made from"
        )
    if not 0 < float(budget_255) <= 255:
        raise InputError(f"budget {budget_255}/255 must be between 1 and 255")
    total = len(VERIFY_SEEDS) * (1 + 2 * len(VERIFY_TRANSFORMS)) + 1

    def progress(ev: dict[str, Any]) -> None:
        if stopped():
            raise Cancelled()
        if on_video is not None:
            on_video(int(ev["done"]), total)

    with session.lock:
        rep = evaluate(a, b, session.adapter, seeds=VERIFY_SEEDS, transforms=list(VERIFY_TRANSFORMS),
                       eps=float(budget_255) / 255, callback=progress)  # fmt: skip
        jpeg = parse_transform(VERIFY_TRANSFORMS[1])
        with torch.no_grad():
            purified = quantize8(jpeg.real(rep.images["protected"]))
            after = session.adapter.generate(purified, seed=VERIFY_SEEDS[0])
        after = after.detach().float().cpu().clamp(0, 1)
    if on_video is not None:
        on_video(total, total)
    out_dir.mkdir(parents=True, exist_ok=True)
    clean = rep.videos["clean"]
    scale = scale_for(int(clean.shape[-2]), GIF_HEIGHT)
    videos = {
        VERIFY_TRANSFORMS[0]: write_gif(side_by_side([clean, rep.videos["protected"]], gap=4),
                                        out_dir / "clean-vs-protected.gif", scale=scale),
        VERIFY_TRANSFORMS[1]: write_gif(side_by_side([clean, after], gap=4),
                                        out_dir / "clean-vs-protected-jpeg75.gif", scale=scale),
    }  # fmt: skip
    noise = {s["transform"]: s["verdict"] for s in rep.summary if s["subject"] == "noise"}
    return VerifyResult(dict(rep.verdicts), noise, rep.table(), videos, rep.save(out_dir),
                        session.demo)  # fmt: skip
