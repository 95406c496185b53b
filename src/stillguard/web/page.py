"""The gradio page: upload, choose, protect, download, verify (a thin layer over :mod:`.work`).

Two queued events, ``protect`` and ``verify``, share one concurrency group with a limit of 1: one
job at a time uses the loaded model, the others wait and gradio shows their place in the queue.
Both are also the page's API (``api_name="protect"`` / ``"verify"``), callable with
``gradio_client`` (see the README). Both are generators driven by :func:`.runner.run_streaming`,
so Stop and a closed tab end the job after its current step.
"""

from __future__ import annotations

import logging
import uuid
from pathlib import Path
from typing import Any

import gradio as gr

from ..errors import StillguardError
from . import render
from .choices import BUDGET_MAX, BUDGET_MIN, budget_note
from .runner import run_streaming
from .session import Session
from .verify import verify_pair
from .work import Upload, protect_uploads

log = logging.getLogger(__name__)
MODEL_QUEUE = "model"  # the concurrency group of every event that uses the model
QUEUE_SIZE = 20


def _uploads(files: Any) -> list[Upload]:
    paths = [files] if isinstance(files, (str, Path)) else list(files or [])
    return [Upload(Path(p), Path(p).name) for p in paths]


def _failure(err: BaseException) -> str:
    if isinstance(err, StillguardError):
        return " ".join(str(err).split())
    log.error("web job failed", exc_info=err)
    return f"internal error ({type(err).__name__}: {err}); the server log has the details"


def _budget(cfg: Any) -> int:
    return round(cfg.loop.eps * 255)


def build_page(session: Session) -> gr.Blocks:
    """The page for one loaded model. Launch it with :func:`.server.launch`."""

    def protect(photos: Any, protection: str, budget: float, steps: float | None,
                seed: float | None, progress: Any = gr.Progress()) -> Any:  # noqa: B008  # fmt: skip
        """Protect one or several photos; returns the status, previews, table, downloads and the
        Verify inputs (original, protected PNG, budget) filled in from the first photo."""
        n_out = 7
        ups = _uploads(photos)

        def job(report: Any, stopped: Any) -> Any:
            def on_step(i: int, n: int, name: str, step: int, total: int) -> None:
                report(
                    step / max(total, 1), f"Photo {i + 1} of {n} ({name}): step {step} of {total}"
                )

            return protect_uploads(session, ups, protection, budget, steps=int(steps or 0) or None,
                                   seed=None if seed is None else int(seed), on_step=on_step,
                                   stopped=stopped)  # fmt: skip

        def cancelled() -> None:
            session.cancelled += 1

        out = yield from run_streaming(job, progress, lambda: (gr.skip(),) * n_out, cancelled)
        if out.cancelled or out.error is not None:
            text = "Stopped: nothing was saved." if out.cancelled else _failure(out.error)
            yield render.message(text, "error"), [], "", None, None, None, gr.skip()
            return
        run = out.value
        gallery = [(str(p.previews[k]), label) for p in run.ok
                   for k, label in (("original", p.name), ("protected", "protected"),
                                    ("difference", "difference x10"))]  # fmt: skip
        first = run.ok[0] if run.ok else None
        yield (render.run_summary(run), gallery, render.results_table(run),
               [str(p) for p in run.downloads] or None,
               str(ups[run.photos.index(first)].path) if first else None,
               str(first.png) if first else None, run.budget_255)  # fmt: skip

    def verify(original: Any, protected: Any, budget: float,
               progress: Any = gr.Progress()) -> Any:  # noqa: B008  # fmt: skip
        """Generate clean and protected videos with the same seeds (also after JPEG 75) and
        measure them; returns the verdicts, two side-by-side GIFs, the table and report.json."""
        n_out = 5
        if not original or not protected:
            msg = "Protect a photo first, or give both the original and the protected PNG."
            yield render.message(msg, "error"), None, None, "", None
            return
        a, b = _uploads(original)[0], _uploads(protected)[0]
        folder = session.out_root / f"verify-{uuid.uuid4().hex[:12]}"

        def job(report: Any, stopped: Any) -> Any:
            def on_video(done: int, total: int) -> None:
                report(done / total, f"Generating videos: {done} of {total}")

            return verify_pair(session, a, b, budget or 8, folder, on_video=on_video,
                               stopped=stopped)  # fmt: skip

        out = yield from run_streaming(job, progress, lambda: (gr.skip(),) * n_out)
        if out.cancelled or out.error is not None:
            text = "Stopped." if out.cancelled else _failure(out.error)
            yield render.message(text, "error"), None, None, "", None
            return
        res = out.value
        yield (render.verdict(res), str(res.videos["identity"]), str(res.videos["jpeg:75"]),
               res.table, str(res.report))  # fmt: skip

    default_budget = _budget(session.config("default"))
    with gr.Blocks(title="stillguard: protect photos", analytics_enabled=False,
                   delete_cache=(3600, 24 * 3600)) as page:  # fmt: skip
        gr.HTML(render.banner(session), visible=session.demo, elem_id="sg-banner-box")
        gr.Markdown(render.header(session))
        with gr.Row():
            with gr.Column(scale=1):
                lim = session.limits
                photos = gr.File(label=f"1. Your photos (drag and drop; up to {lim.max_photos}, "
                                       f"{lim.max_upload_mb:g} MB and {lim.max_pixels / 1e6:g} "
                                       "megapixels each)",
                                 file_count="multiple", type="filepath", elem_id="sg-photos")  # fmt: skip
                protection = gr.Radio([(c.title, k) for k, c in session.choices.items()], value="default",
                                      label="2. Protection", elem_id="sg-protection")  # fmt: skip
                choices = gr.HTML(render.choices_table(session))
                budget = gr.Slider(BUDGET_MIN, BUDGET_MAX, value=default_budget, step=1,
                                   label="3. Strength (budget, in steps of 1/255)",
                                   elem_id="sg-budget")  # fmt: skip
                note = gr.Markdown(budget_note(default_budget), elem_id="sg-budget-note")
                with gr.Accordion("Advanced", open=False):
                    steps = gr.Number(0, precision=0, minimum=0, label="Steps (0 = the protection's own)",
                                      elem_id="sg-steps")  # fmt: skip
                    seed = gr.Number(0, precision=0, label="Seed (same photo + seed = same result)")
                with gr.Row():
                    go = gr.Button("Protect", variant="primary", elem_id="sg-protect")
                    stop = gr.Button("Stop", variant="stop", elem_id="sg-stop")
            with gr.Column(scale=1):
                status = gr.HTML(
                    render.message("Results appear here.", "info"), elem_id="sg-status"
                )
                gallery = gr.Gallery(label="original | protected | difference x10", columns=3,
                                     height=300, object_fit="contain", elem_id="sg-gallery")  # fmt: skip
                results = gr.HTML("", elem_id="sg-results-box")
                downloads = gr.File(label="4. Download", file_count="multiple",
                                    interactive=False, elem_id="sg-downloads")  # fmt: skip
        gr.Markdown("## 5. Check the protection\nGenerates videos from the original and from the "
                    "protected photo with the same seeds, also after JPEG compression (quality 75), "
                    "and measures how much they move.")  # fmt: skip
        with gr.Accordion("Files to check (filled in from your last protection)", open=False):
            with gr.Row():
                v_original = gr.File(label="original", type="filepath", elem_id="sg-v-original")
                v_protected = gr.File(
                    label="protected PNG", type="filepath", elem_id="sg-v-protected"
                )
                v_budget = gr.Number(default_budget, label="budget of the protection (/255)")
        check = gr.Button("Verify", elem_id="sg-verify")
        with gr.Column(visible=False) as v_out:
            verdict = gr.HTML("", elem_id="sg-verdict")
            with gr.Row():
                gif = gr.Image(label="clean video | protected video (seed 0)", type="filepath",
                               height=300, elem_id="sg-video")  # fmt: skip
                gif_jpeg = gr.Image(label="clean video | protected video after JPEG 75",
                                    type="filepath", height=300, elem_id="sg-video-jpeg")  # fmt: skip
            table = gr.Code(label="motion table (what `stillguard verify` prints)", language=None,
                            elem_id="sg-table")  # fmt: skip
            report = gr.File(label="report.json", interactive=False)

        protection.change(lambda c: _budget(session.config(c)), protection, budget,
                          api_visibility="private", queue=False)  # fmt: skip
        budget.change(budget_note, budget, note, api_visibility="private", queue=False)
        event = go.click(protect, [photos, protection, budget, steps, seed],
                         [status, gallery, results, downloads, v_original, v_protected, v_budget],
                         api_name="protect", concurrency_id=MODEL_QUEUE, concurrency_limit=1,
                         show_progress_on=[gallery])  # fmt: skip
        event.then(lambda: render.choices_table(session), None, choices, queue=False,
                   api_visibility="private")  # fmt: skip
        v_event = check.click(verify, [v_original, v_protected, v_budget],
                              [verdict, gif, gif_jpeg, table, report], api_name="verify",
                              concurrency_id=MODEL_QUEUE, concurrency_limit=1,
                              show_progress_on=[verdict])  # fmt: skip
        check.click(lambda: gr.Column(visible=True), None, v_out, queue=False,
                    api_visibility="private")  # fmt: skip
        stop.click(lambda: render.message("Stopped: the photo being protected was not saved.",
                                          "error"), None, status, cancels=[event, v_event],
                   queue=False, api_visibility="private")  # fmt: skip
    page.queue(default_concurrency_limit=1, max_size=QUEUE_SIZE)
    return page
