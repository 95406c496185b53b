"""The batch manifest: one JSON line per finished input, the record that makes a run resumable.

Layout: ``OUT/manifest.jsonl``, lines ``{"input", "status": ok|failed, "output", "sidecar",
"input_sha256", "output_sha256", "config_hash", "error", "seconds", "real_model", "run", "time"}``
(paths relative to ``OUT``, the input absolute; :func:`manifest_record`).

The run's driver (:class:`.driver.Driver`) is the only writer, whatever the executor: units of
work write outputs, never the manifest.

Choices:
    * the manifest is opened (created, locked) when the first input has been read: a run whose
      inputs are all unreadable writes nothing at all;
    * opening takes an exclusive lock (two runs never share one output folder), cuts off a partial
      last line left by a kill, and removes stale temporary files of outputs;
    * an output name belongs to the input of its last ``ok`` line: another input (another path with
      other content) gets a tagged name instead (the rule lives in :mod:`.names`);
    * an input is done when an ``ok`` line has the same input SHA-256, config hash and output path,
      and that output still exists with the recorded SHA-256 (and its sidecar exists);
    * a resumed run appends nothing for the inputs it skips, so the manifest does not grow with
      every resume; failures are appended on every run (they may have been fixed since).
"""

from __future__ import annotations

import json
import logging
import os
import time
from pathlib import Path
from typing import Any

from ...errors import InputError
from ...files import WriteError, sha256_file
from ...files import remove_stale_temporaries as remove_temporaries
from ...names import shown_name

log = logging.getLogger(__name__)

MANIFEST = "manifest.jsonl"
TEMP_MARKERS = (".protected.png", ".protected.json")


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


def relative(path: str | os.PathLike[str] | None, out: Path) -> str | None:
    """``path`` relative to the output folder, POSIX style (``None`` stays ``None``)."""
    return None if path is None else Path(os.path.relpath(path, out)).as_posix()


def manifest_record(result: Any, input_path: Path, out: Path, run_id: str) -> dict[str, Any]:
    """The manifest line of a :class:`~.results.ItemResult`: paths relative to ``out``, the input
    absolute, the run id and the time."""
    record = {
        **result.to_dict(),
        "input": os.path.abspath(input_path),
        "output": relative(result.output, out),
        "sidecar": relative(result.sidecar, out),
    }
    record.update(run=run_id, time=time.strftime("%Y-%m-%dT%H:%M:%S%z"))
    return record


def remove_stale_temporaries(folder: Path) -> None:
    """Delete temporaries of outputs left by a killed run (``.NAME.protected.png.XXXX.tmp``)."""
    folders = {tmp.parent for tmp in folder.rglob(".*.tmp")}
    for sub in sorted(folders):
        remove_temporaries(sub, lambda name: any(m in name for m in TEMP_MARKERS))


class Manifest:
    """The manifest of one output folder, opened (created, locked) on first use.

    Use as a context manager; :meth:`open` is called by the driver when the first input has been
    read (the local executor) or at the start (Ray), and :meth:`append` buffers records until then
    (they are dropped if it never opens).
    """

    def __init__(self, out: Path) -> None:
        self.out = out
        self.path = out / MANIFEST
        self.fd: int | None = None
        self._pending: list[dict[str, Any]] = []
        self._done = self._index()

    def _index(self) -> dict[tuple[Any, Any, Any], dict[str, Any]]:
        ok = [r for r in read_manifest(self.path) if r.get("status") == "ok"]
        self._owners = {str(r.get("output")).lower(): r for r in ok}
        return {(r.get("input_sha256"), r.get("config_hash"), r.get("output")): r for r in ok}

    def owner(self, output: str | None) -> dict[str, Any] | None:
        """The last ``ok`` line that gives the name ``output`` (case-insensitively), if any."""
        return self._owners.get(str(output).lower())

    def taken(self, output: str | None, input_path: str, input_sha256: str) -> bool:
        """Does an ``ok`` line give ``output`` to another input (another path, other content)?

        Then writing it would overwrite another input's protected image (two memory cards that both
        hold ``IMG_0001.jpg``, protected into one folder by two runs).
        """
        rec = self.owner(output)
        return (
            bool(rec) and rec.get("input") != input_path and rec.get("input_sha256") != input_sha256
        )

    def __enter__(self) -> Manifest:
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None

    @property
    def opened(self) -> bool:
        return self.fd is not None

    def open(self) -> None:
        """Create the folder, lock the manifest, cut a partial last line, read what is done."""
        if self.fd is not None:
            return
        self.out.mkdir(parents=True, exist_ok=True)
        fd = os.open(self.path, os.O_RDWR | os.O_CREAT | os.O_APPEND, 0o644)
        try:
            try:
                import fcntl

                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except ImportError:  # pragma: no cover - not POSIX: no lock
                pass
            except OSError:
                raise InputError(
                    f"{shown_name(self.out)}: another stillguard run is writing to this folder; "
                    "wait for it to finish or choose another output folder"
                ) from None
            size = os.fstat(fd).st_size
            if size:
                os.lseek(fd, 0, os.SEEK_SET)
                data = os.read(fd, size)
                if not data.endswith(b"\n"):
                    os.ftruncate(fd, data.rfind(b"\n") + 1)
                    log.warning(
                        "%s: removed a partial last line left by an interrupted run", MANIFEST
                    )
            remove_stale_temporaries(self.out)
        except BaseException:
            os.close(fd)
            raise
        self.fd = fd
        self._done = self._index()
        for rec in self._pending:
            self._write(rec)
        self._pending.clear()

    def done(
        self, input_sha256: str, config_hash: str, output: str | None
    ) -> dict[str, Any] | None:
        """The ``ok`` record of this input, config and output if its files are intact, else None."""
        rec = self._done.get((input_sha256, config_hash, output))
        if not rec:
            return None
        side = self.out / rec["sidecar"] if rec.get("sidecar") else None
        try:
            intact = sha256_file(self.out / rec["output"]) == rec["output_sha256"]
            return rec if intact and (side is None or side.is_file()) else None
        except OSError:
            return None

    def append(self, record: dict[str, Any]) -> None:
        """Append one line (fsync'd), or buffer it until the manifest is opened."""
        if self.fd is None:
            self._pending.append(record)
            return
        self._write(record)

    def _write(self, record: dict[str, Any]) -> None:
        assert self.fd is not None
        try:
            os.write(self.fd, (json.dumps(record, sort_keys=True, default=str) + "\n").encode())
            os.fsync(self.fd)
        except OSError as e:  # a full disk: stop here, with the path (the next run cuts the line)
            raise WriteError(self.path, e) from None
        if record.get("status") == "ok":
            key = (record.get("input_sha256"), record.get("config_hash"), record.get("output"))
            self._done[key] = record
            self._owners[str(record.get("output")).lower()] = record
