"""Run a long job in a worker thread while a gradio generator reports its progress.

Why a thread: gradio can only stop a generator between two ``yield``\\ s. The job (the loop, the
video generation) runs in a worker thread; the generator the page calls wakes up every
:data:`TICK` seconds (or at each progress message), drives ``gr.Progress`` and yields a no-op
update. When the person presses Stop or closes the tab, gradio stops iterating and closes the
generator; closing sets the stop flag, which the job polls after every step of the loop (or every
generated video) and answers by raising :class:`~.work.Cancelled`. gradio closes the generator
from its event loop, so closing does not wait for the worker (that would freeze the server for a
step); the model's lock (:attr:`~.session.Session.lock`) keeps the next job off the model until
the cancelled one has ended its step.
"""

from __future__ import annotations

import logging
import queue
import threading
from collections.abc import Callable, Generator
from typing import Any

from .work import Cancelled

log = logging.getLogger(__name__)
TICK = 0.5
Report = Callable[[float, str], None]


class Outcome:
    """What the worker left: ``value`` or ``error`` (an exception), and ``cancelled``."""

    value: Any = None
    error: BaseException | None = None
    cancelled: bool = False


def run_streaming(
    job: Callable[[Report, Callable[[], bool]], Any],
    progress: Callable[..., Any],
    idle: Callable[[], Any],
    on_cancel: Callable[[], None] = lambda: None,
) -> Generator[Any, None, Outcome]:
    """Run ``job(report, stopped)`` in a thread; yield ``idle()`` while it runs; return its outcome.

    Args:
        job: the work; ``report(fraction, text)`` shows progress, ``stopped()`` says to stop.
        progress: a ``gr.Progress``; called from this generator's thread only.
        idle: the no-op update to yield while waiting (e.g. ``gr.skip()`` for every output).
        on_cancel: called once if the generator is closed before the job ended.
    """
    messages: queue.Queue[tuple[float, str] | None] = queue.Queue()
    stop = threading.Event()
    out = Outcome()

    def work() -> None:
        try:
            out.value = job(lambda f, text: messages.put((f, text)), stop.is_set)
        except Cancelled:
            out.cancelled = True
        except BaseException as e:  # noqa: BLE001 - handed to the page, which shows it
            out.error = e
        finally:
            messages.put(None)

    worker = threading.Thread(target=work, name="stillguard-web-job", daemon=True)
    worker.start()
    finished = False
    try:
        while not finished:
            try:
                msg = messages.get(timeout=TICK)
            except queue.Empty:
                yield idle()
                continue
            while msg is not None:  # drain: show only the latest progress
                progress(msg[0], desc=msg[1])
                try:
                    msg = messages.get_nowait()
                except queue.Empty:
                    break
            finished = msg is None
            if not finished:
                yield idle()
    finally:
        if not finished:  # closed by gradio: Stop pressed or the tab went away
            stop.set()
            on_cancel()
            log.info("job cancelled; it stops after its current step")
    return out
