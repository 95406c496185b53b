"""One input's job in a bulk run: protect it (or take its result from a batch) and write its PNG
and sidecar atomically; the run hash that names a finished job in the manifest.

:mod:`.batch` (the resumable folder run), :mod:`.batch_groups` (several inputs per pass) and the
Ray worker (:mod:`.ray_actor`) all save through :func:`save_result`, so a job's outputs are the same
files whichever way it was run. No manifest here: its writer is the run's driver.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Any

from ..errors import StillguardError
from ..files import WriteError, sha256_file
from ..images import LoadedImage
from .inputs import BatchItem
from .outputs import save_protected
from .results import ItemResult

log = logging.getLogger(__name__)


def run_hash(cfg: Any, keep_metadata: bool = False) -> str:
    """Hash of everything that changes the output bytes: the run config and ``keep_metadata``."""
    from ..metadata import label  # "True+gps" when GPS is kept: a different output

    return hashlib.sha256(f"{cfg.hash()}|keep_metadata={label(keep_metadata)}".encode()).hexdigest()


def save_result(
    item: BatchItem,
    cfg: Any,
    adapter: Any,
    loaded: LoadedImage,
    result: Any,
    *,
    keep_metadata: bool = False,
    clean_stale: bool = True,
) -> ItemResult:
    """Write one protected result's PNG and sidecar atomically (no manifest): the one place a job's
    outputs are saved, for one image (:func:`protect_file`) and for a batch
    (:func:`.batch_groups.protect_group`).

    ``seconds`` of the returned result: the protection's share (``result.seconds``) plus the save.
    """
    t0 = time.perf_counter()
    chash = run_hash(cfg, keep_metadata)
    png = save_protected(
        result,
        item.output,
        source=loaded,
        keep_metadata=keep_metadata,
        clean_stale=clean_stale,
        extra={
            "input": dict(loaded.info),
            "alpha_reattached": loaded.alpha is not None,
            "metadata_kept": bool(keep_metadata),
            "config_hash": chash,
            "run_config": {
                **cfg.to_dict(),
                "description": cfg.summary(getattr(adapter, "is_real", None)),
            },
        },
    )
    return ItemResult(
        input=str(item.input),
        status="ok",
        output=str(png),
        sidecar=str(item.sidecar),
        input_sha256=loaded.sha256,
        output_sha256=sha256_file(png),
        config_hash=chash,
        seconds=round(result.seconds + time.perf_counter() - t0, 3),
        real_model=result.real_model,
    )


def protect_file(
    item: BatchItem,
    cfg: Any,
    adapter: Any,
    loaded: LoadedImage,
    *,
    keep_metadata: bool = False,
    callback: Callable[[Any], None] | None = None,
    clean_stale: bool = True,
) -> ItemResult:
    """Protect one loaded input and write its PNG and sidecar atomically (no manifest).

    Args:
        item: input and output paths.
        cfg: a :class:`stillguard.app.config.RunConfig`.
        adapter: a loaded adapter.
        loaded: the input, read and decoded once (:func:`stillguard.images.load_image`).
        keep_metadata: copy the input's EXIF into the PNG.
        callback: forwarded to :func:`stillguard.protect`.
        clean_stale: forwarded to :func:`~stillguard.app.outputs.save_protected`.
    """
    from ..loop import protect

    t0 = time.perf_counter()
    result = protect(loaded.tensor, adapter, callback=callback, **cfg.protect_kwargs())
    res = save_result(
        item, cfg, adapter, loaded, result, keep_metadata=keep_metadata, clean_stale=clean_stale
    )
    res.seconds = round(time.perf_counter() - t0, 3)
    return res


def attempt(res: ItemResult, fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``None`` with the error recorded in ``res`` (one bad input must not stop a batch)."""
    try:
        return fn()
    except WriteError as e:
        if e.stops_batch:
            raise  # a full disk fails every next input too: stop at the first, with the path
        res.error = str(e)
    except StillguardError as e:
        res.error = str(e)
    except Exception as e:  # noqa: BLE001
        log.debug("failed on %s", res.input, exc_info=True)
        res.error = f"{type(e).__name__}: {e}"
    return None
