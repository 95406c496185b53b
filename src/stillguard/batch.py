"""Protect many images with one loaded model, resumably: a crash or SIGKILL loses and repeats nothing.

Layout of an output folder::

    OUT/NAME.protected.png    protected image (alpha re-attached, metadata stripped by default)
    OUT/NAME.protected.json   sidecar: input facts, resolved config, metrics, losses, warnings
    OUT/manifest.jsonl        one JSON line per finished input (ok | failed | skipped)

Choices:
    * directories are walked recursively in sorted order (hidden entries, ``*.protected.png`` files
      and the output folder itself are skipped; a directory reached twice, e.g. through a symlink
      loop, is walked once); files found inside a directory keep their sub-folder under ``OUT``;
    * when two inputs would get the same output name (case-insensitively), each of them gets the
      first 8 hex digits of the SHA-1 of its absolute path appended to the stem;
    * an input is skipped when the manifest has an ``ok`` line with the same input SHA-256, config
      hash and output path, and that output still exists with the recorded SHA-256;
    * order of writes per input: PNG (atomic), sidecar (atomic), then the manifest line (appended,
      fsync'd); a partial last line left by a kill is cut off at the next start, stale temporary
      files are removed, and an exclusive lock keeps two runs from sharing one output folder;
    * the config hash also covers ``keep_metadata`` (it changes the output bytes);
    * the PNG carries no stillguard marker: a tag saying "protected" would tell an attacker which
      images to purify. The sidecar is a separate file the user may keep private.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import os
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import io as sio
from .errors import InputError, StillguardError

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
SUFFIX = ".protected.png"


@dataclass
class BatchItem:
    """One input and where its outputs go."""

    input: Path
    output: Path
    sidecar: Path


@dataclass
class ItemResult:
    """What happened to one input (also one manifest line)."""

    input: str
    status: str
    output: str | None = None
    sidecar: str | None = None
    input_sha256: str | None = None
    output_sha256: str | None = None
    config_hash: str | None = None
    error: str | None = None
    seconds: float = 0.0
    real_model: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass
class BatchEvent:
    """Progress of a batch: ``kind`` is ``"start"``, ``"step"`` or ``"done"`` (with ``result``)."""

    kind: str
    index: int
    total: int
    input: Path
    step: int = 0
    steps: int = 0
    loss: float | None = None
    result: ItemResult | None = None


@dataclass
class BatchResult:
    """All results of a batch run, in input order."""

    items: list[ItemResult] = field(default_factory=list)
    manifest: Path | None = None
    config_hash: str = ""

    def count(self, status: str) -> int:
        return sum(r.status == status for r in self.items)

    @property
    def exit_code(self) -> int:
        """0 when nothing failed, else 1."""
        return 1 if self.count("failed") else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "ok": self.count("ok"),
            "failed": self.count("failed"),
            "skipped": self.count("skipped"),
            "manifest": str(self.manifest) if self.manifest else None,
            "config_hash": self.config_hash,
            "items": [r.to_dict() for r in self.items],
        }


# ----------------------------------------------------------------------------- planning
def _walk(root: Path, skip: Path | None) -> Iterator[Path]:
    seen: set[tuple[int, int]] = set()
    stack = [root]
    while stack:
        folder = stack.pop()
        try:
            st = folder.stat()
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as e:
            log.warning("skipping folder %s: %s", folder, e.strerror or e)
            continue
        subdirs = []
        for entry in entries:
            if entry.name.startswith("."):
                continue
            p = Path(entry.path)
            try:
                is_dir = entry.is_dir()
            except OSError:
                is_dir = False
            if is_dir:
                if skip is None or not _same(p, skip):
                    subdirs.append(p)
            elif p.suffix.lower() in sio.IMAGE_EXTENSIONS and not p.name.endswith(SUFFIX):
                yield p
        stack.extend(reversed(subdirs))


def _same(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def plan(
    inputs: Iterable[str | os.PathLike[str]], out_dir: str | os.PathLike[str]
) -> list[BatchItem]:
    """Expand folders and assign output paths (see the module docstring for naming).

    Raises:
        InputError: no inputs, ``out_dir`` is a file, or an output would replace an input.
    """
    out = Path(out_dir)
    if out.exists() and not out.is_dir():
        raise InputError(f"{out}: exists and is not a folder; give a folder for the outputs")
    found: list[tuple[Path, Path]] = []  # (input, output relative to out)
    seen: set[str] = set()
    for raw in inputs:
        p = Path(raw)
        pairs = (
            [(f, f.relative_to(p).parent) for f in _walk(p, out)] if p.is_dir() else [(p, Path())]
        )
        for f, rel in pairs:
            key = os.path.realpath(f)
            if key not in seen:
                seen.add(key)
                found.append((f, rel / (f.stem + SUFFIX)))
    if not found:
        raise InputError("no input images found; pass image files or folders that hold some")
    names: dict[str, int] = {}
    for _, rel in found:
        names[str(rel).lower()] = names.get(str(rel).lower(), 0) + 1
    items = []
    for f, rel in found:
        if names[str(rel).lower()] > 1:
            tag = hashlib.sha1(os.path.abspath(f).encode()).hexdigest()[:8]
            rel = rel.with_name(f"{f.stem}-{tag}{SUFFIX}")
        output = out / rel
        items.append(BatchItem(f, output, output.with_suffix(".json")))
    inputs_real = {os.path.realpath(f) for f, _ in found}
    for it in items:
        for o in (it.output, it.sidecar):
            if os.path.realpath(o) in inputs_real:
                raise InputError(f"{o}: the output path is an input; choose another output folder")
    return items


def check_writable(folder: str | os.PathLike[str]) -> None:
    """Refuse an output folder that cannot be created or written, before any work is done."""
    path = Path(os.path.abspath(folder))
    probe = path
    while not probe.exists() and probe != probe.parent:
        probe = probe.parent
    if not probe.is_dir():
        raise InputError(
            f"{folder}: cannot create the output folder ({probe} is a file); choose another"
        )
    if not os.access(probe, os.W_OK | os.X_OK):
        raise InputError(f"{folder}: the output folder is not writable ({probe}); choose another")


def run_hash(cfg: Any, keep_metadata: bool = False) -> str:
    """Hash of everything that changes the output bytes: the run config and ``keep_metadata``."""
    return hashlib.sha256(f"{cfg.hash()}|keep_metadata={bool(keep_metadata)}".encode()).hexdigest()


# ----------------------------------------------------------------------------- one image
def protect_file(
    item: BatchItem,
    cfg: Any,
    adapter: Any,
    *,
    keep_metadata: bool = False,
    max_pixels: int = sio.DEFAULT_MAX_PIXELS,
    loaded: sio.LoadedImage | None = None,
    callback: Callable[[Any], None] | None = None,
) -> ItemResult:
    """Protect one file and write its PNG and sidecar atomically (no manifest).

    Args:
        item: input and output paths.
        cfg: a :class:`stillguard.config.RunConfig`.
        adapter: a loaded adapter.
        keep_metadata: copy the input's EXIF into the PNG.
        max_pixels: input size limit.
        loaded: the already loaded input, if any.
        callback: forwarded to :func:`stillguard.protect.protect`.
    """
    from .protect import protect

    t0 = time.perf_counter()
    img = loaded or sio.load_image(item.input, max_pixels=max_pixels)
    result = protect(img.tensor, adapter, callback=callback, **cfg.protect_kwargs())
    real = bool(getattr(adapter, "is_real", True))
    png = result.save(
        item.output,
        source=img,
        keep_metadata=keep_metadata,
        extra={
            "input": dict(img.info),
            "alpha_reattached": img.alpha is not None,
            "metadata_kept": bool(keep_metadata),
            "config_hash": run_hash(cfg, keep_metadata),
            "run_config": cfg.to_dict(),
        },
    )
    out_sha = sio.sha256_file(png)
    return ItemResult(
        input=str(item.input),
        status="ok",
        output=str(png),
        sidecar=str(item.sidecar),
        input_sha256=img.sha256,
        output_sha256=out_sha,
        config_hash=run_hash(cfg, keep_metadata),
        seconds=round(time.perf_counter() - t0, 3),
        real_model=real,
    )


# ----------------------------------------------------------------------------- manifest
def read_manifest(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """Parsed manifest lines; unparsable lines (e.g. cut by a kill) are ignored."""
    records = []
    try:
        lines = Path(path).read_bytes().split(b"\n")
    except FileNotFoundError:
        return []
    for line in lines:
        try:
            rec = json.loads(line)
        except ValueError:
            continue
        if isinstance(rec, dict):
            records.append(rec)
    return records


@contextlib.contextmanager
def _open_manifest(out: Path) -> Iterator[int]:
    """Open (and lock) the manifest for appending, cutting off a partial last line."""
    out.mkdir(parents=True, exist_ok=True)
    fd = os.open(out / MANIFEST, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
    try:
        try:
            import fcntl

            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except ImportError:  # pragma: no cover - not POSIX: no lock
            pass
        except OSError:
            raise InputError(
                f"{out}: another stillguard run is writing to this folder; wait for it to finish "
                "or choose another output folder"
            ) from None
        size = os.fstat(fd).st_size
        if size:
            os.lseek(fd, 0, os.SEEK_SET)
            data = os.read(fd, size)
            if not data.endswith(b"\n"):
                os.ftruncate(fd, data.rfind(b"\n") + 1)
                log.warning("%s: removed a partial last line left by an interrupted run", MANIFEST)
        for tmp in out.rglob(".*.tmp"):
            if SUFFIX in tmp.name or ".protected.json" in tmp.name:
                tmp.unlink(missing_ok=True)
        yield fd
    finally:
        os.close(fd)


def _append(fd: int, record: dict[str, Any]) -> None:
    os.write(fd, (json.dumps(record, sort_keys=True, default=str) + "\n").encode())
    os.fsync(fd)


def _is_done(rec: dict[str, Any] | None, out: Path) -> bool:
    if not rec:
        return False
    path = out / rec["output"]
    side = out / rec["sidecar"] if rec.get("sidecar") else None
    try:
        return (side is None or side.is_file()) and sio.sha256_file(path) == rec["output_sha256"]
    except OSError:
        return False


def pending(
    items: list[BatchItem], out_dir: str | os.PathLike[str], config_hash: str
) -> list[BatchItem]:
    """The items that a run would protect (not already done per the manifest; read-only)."""
    out = Path(out_dir)
    done = _done_index(out)
    todo = []
    for it in items:
        try:
            key = (sio.sha256_file(it.input), config_hash, _rel(str(it.output), out))
        except OSError:
            key = None  # unreadable: the run will report it
        if key is None or not _is_done(done.get(key), out):
            todo.append(it)
    return todo


def _done_index(out: Path) -> dict[tuple[Any, Any, Any], dict[str, Any]]:
    return {
        (r.get("input_sha256"), r.get("config_hash"), r.get("output")): r
        for r in read_manifest(out / MANIFEST)
        if r.get("status") == "ok"
    }


def _rel(path: str | None, out: Path) -> str | None:
    return None if path is None else Path(os.path.relpath(path, out)).as_posix()


def _attempt(res: ItemResult, fn: Callable[[], Any]) -> Any:
    """``fn()``, or ``None`` with the error recorded in ``res`` (one bad input must not stop a batch)."""
    try:
        return fn()
    except StillguardError as e:
        res.error = str(e)
    except Exception as e:  # noqa: BLE001
        log.debug("failed on %s", res.input, exc_info=True)
        res.error = f"{type(e).__name__}: {e}"
    return None


def _skipped(rec: dict[str, Any], item: BatchItem, chash: str) -> ItemResult:
    return ItemResult(
        input=str(item.input),
        status="skipped",
        output=str(item.output),
        sidecar=str(item.sidecar),
        input_sha256=rec.get("input_sha256"),
        output_sha256=rec.get("output_sha256"),
        config_hash=chash,
        real_model=rec.get("real_model"),
    )


# ----------------------------------------------------------------------------- batch
def run_batch(
    inputs: Iterable[str | os.PathLike[str]],
    out_dir: str | os.PathLike[str],
    cfg: Any,
    adapter: Any,
    *,
    callback: Callable[[BatchEvent], None] | None = None,
    keep_metadata: bool = False,
    max_pixels: int = sio.DEFAULT_MAX_PIXELS,
) -> BatchResult:
    """Protect every input image into ``out_dir``, resuming from ``out_dir/manifest.jsonl``.

    Args:
        inputs: image files and folders.
        out_dir: output folder (created).
        cfg: a :class:`stillguard.config.RunConfig`.
        adapter: a loaded adapter, or a zero-argument callable that loads it (called at most once,
            and only if some input needs protecting).
        callback: receives :class:`BatchEvent` progress.
        keep_metadata: copy each input's EXIF into its PNG.
        max_pixels: input size limit.

    Returns:
        A :class:`BatchResult`; ``exit_code`` is 1 if any input failed.

    Raises:
        InputError: bad output folder or plan (see :func:`plan`); a model that cannot be loaded
            raises its own error and stops the batch.
    """
    out = Path(out_dir)
    items = plan(inputs, out)
    check_writable(out)
    chash = run_hash(cfg, keep_metadata)
    result = BatchResult(manifest=out / MANIFEST, config_hash=chash)
    emit = callback or (lambda event: None)
    model: list[Any] = [] if callable(adapter) and not hasattr(adapter, "describe") else [adapter]
    with _open_manifest(out) as fd:
        done = _done_index(out)
        run_id = time.strftime("%Y%m%dT%H%M%S") + f"-{os.getpid()}"
        for i, item in enumerate(items):
            emit(BatchEvent("start", i, len(items), item.input))
            t0 = time.perf_counter()
            rel_out = _rel(str(item.output), out)
            res = ItemResult(input=str(item.input), status="failed", config_hash=chash)
            loaded = _attempt(
                res, lambda item=item: sio.load_image(item.input, max_pixels=max_pixels)
            )
            if loaded is not None:
                res.input_sha256 = loaded.sha256
                rec = done.get((loaded.sha256, chash, rel_out))
                if _is_done(rec, out):
                    res = _skipped(rec, item, chash)
                else:
                    if not model:
                        model.append(adapter())  # a model that cannot load stops the batch

                    def step(ev: Any, i: int = i, item: BatchItem = item) -> None:
                        emit(
                            BatchEvent(
                                "step", i, len(items), item.input, ev.step, ev.steps, ev.loss
                            )
                        )

                    res = (
                        _attempt(
                            res,
                            lambda item=item, loaded=loaded, step=step: protect_file(
                                item,
                                cfg,
                                model[0],
                                keep_metadata=keep_metadata,
                                loaded=loaded,
                                callback=step,
                            ),
                        )
                        or res
                    )
            res.seconds = res.seconds or round(time.perf_counter() - t0, 3)
            record = {
                **res.to_dict(),
                "input": os.path.abspath(item.input),
                "output": _rel(res.output, out),
                "sidecar": _rel(res.sidecar, out),
            }
            record.update(run=run_id, time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
            _append(fd, record)
            if res.status == "ok":
                done[(res.input_sha256, chash, rel_out)] = record
            result.items.append(res)
            emit(BatchEvent("done", i, len(items), item.input, result=res))
    return result
