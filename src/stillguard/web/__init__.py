"""``stillguard web``: a page for people who do not use a terminal (gradio; the ``web`` extra).

A front, like :mod:`stillguard.cli`: it calls :mod:`stillguard.app`, :mod:`stillguard.measure` and
the core, and nothing imports it. Modules: :mod:`.choices` (what the page offers and its limits),
:mod:`.session` (the model, loaded once), :mod:`.work` and :mod:`.verify` (the jobs, without
gradio), :mod:`.runner` (jobs in a thread, stoppable), :mod:`.render` (HTML pieces), :mod:`.page`
(the gradio page), :mod:`.server` (address, credentials, launch).

Use :func:`serve` (what the command runs), or ``build_page`` + ``launch`` to embed it.
"""

from __future__ import annotations

from typing import Any

from .server import Access, check_access, quiet_gradio
from .session import Limits, Session

__all__ = ["Access", "Limits", "Session", "check_access", "serve", "start"]


def start(session: Session, access: Access, *, block: bool = True) -> Any:
    """Build the page for a loaded ``session`` and serve it (``block=False``: return at once).

    Returns:
        The gradio ``Blocks`` (call ``.close()`` to stop serving).
    """
    quiet_gradio()
    from .page import build_page
    from .server import launch

    page = build_page(session)
    launch(page, access, max_upload_mb=session.limits.max_upload_mb, block=block,
           allowed=[str(session.out_root)])  # fmt: skip
    return page


def serve(
    access: Access,
    *,
    target: str = "cogvideox-i2v",
    model: str | None = None,
    device: str = "cpu",
    dtype: str = "float32",
    limits: Limits | None = None,
    calibrate: bool = True,
    block: bool = True,
) -> Any:
    """Load the model once, time one step of each protection, and serve the page."""
    quiet_gradio()
    session = Session.load(target, model, device=device, dtype=dtype, limits=limits or Limits())
    if calibrate:
        session.calibrate()
    return start(session, access, block=block)
