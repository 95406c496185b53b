"""Which inputs are protected together (``--batch-size N``): inputs of one size, N at most a group.

One grouping for every executor: :class:`Pending` gathers entries by a size key and hands out the
groups to protect. The local executor feeds it inputs as they are read (key: the loaded tensor's
size, :func:`tensor_size`) and bounds what waits; the Ray driver groups the inputs left to do
before it sends them (:func:`by_size`; key: the file header's size, :func:`header_size`, since the
worker reads the file, not the driver).

Choices:
    * the key is the size the loop sees, ``(H, W)`` after the EXIF rotation; the header key turns
      the header's size by the EXIF orientation, so both executors group alike; a file whose header
      cannot be read gets the key ``None`` (its unit of work reports what is wrong with it);
    * groups are handed out when full; with a bound (the local executor: ``2 * batch_size``
      decoded inputs at most wait), the group waiting longest goes when the bound is reached;
      every partial group goes at the end, oldest first;
    * ``batch_size == 1``: every input alone, in input order (no header is read).
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from typing import Any, Generic, TypeVar

from ...errors import InputError

T = TypeVar("T")

#: EXIF orientations that turn the picture by 90 degrees (the tensor's H and W are the header's W, H)
_TURNED = (5, 6, 7, 8)


def check_batch_size(batch_size: Any) -> int:
    """``batch_size`` as an int >= 1.

    Raises:
        InputError: not a whole number >= 1.
    """
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise InputError(
            f"batch size {batch_size!r} is not a whole number >= 1: give how many images of one "
            "size to protect per forward/backward pass (1: one at a time)"
        )
    return batch_size


def tensor_size(loaded: Any) -> tuple[int, int]:
    """The key of a read input: its tensor's ``(H, W)``."""
    return int(loaded.tensor.shape[-2]), int(loaded.tensor.shape[-1])


def header_size(path: Any) -> tuple[int, int] | None:
    """The key of an unread file: ``(H, W)`` from its header, turned by its EXIF orientation
    (``None`` if the header cannot be read)."""
    from PIL import Image

    try:
        with Image.open(path) as im:  # header only
            w, h = im.size
            turned = im.getexif().get(0x0112) in _TURNED
    except Exception:  # noqa: BLE001 - the unit of work reports what is wrong with the file
        return None
    return (w, h) if turned else (h, w)


class Pending(Generic[T]):
    """Entries waiting to be protected, grouped by key, ``batch_size`` at most a group.

    :meth:`add` returns the groups to protect now: the entry's group when it is full, else the
    group waiting longest when ``limit`` entries wait; :meth:`drain` returns the rest.

    Args:
        batch_size: entries per group, at most.
        bounded: at most ``2 * batch_size`` entries wait (``limit``); else no bound.
    """

    def __init__(self, batch_size: int, bounded: bool = True) -> None:
        self.batch_size = check_batch_size(batch_size)
        self.limit = 2 * self.batch_size if bounded else None
        self.groups: dict[Hashable, list[T]] = {}  # insertion order: oldest first

    def __len__(self) -> int:
        return sum(len(g) for g in self.groups.values())

    def add(self, entry: T, key: Hashable) -> list[list[T]]:
        group = self.groups.setdefault(key, [])
        group.append(entry)
        if len(group) >= self.batch_size:
            return [self.groups.pop(key)]
        if self.limit is not None and len(self) >= self.limit:
            return [self.groups.pop(next(iter(self.groups)))]
        return []

    def drain(self) -> Iterator[list[T]]:
        while self.groups:
            yield self.groups.pop(next(iter(self.groups)))


def by_size(entries: Iterable[T], batch_size: int, key: Callable[[T], Hashable]) -> list[list[T]]:
    """All ``entries`` in groups of one key, ``batch_size`` at most a group (no bound on what
    waits); ``batch_size == 1``: each alone, in order, without calling ``key``."""
    if check_batch_size(batch_size) == 1:
        return [[e] for e in entries]
    pending: Pending[T] = Pending(batch_size, bounded=False)
    groups = [g for e in entries for g in pending.add(e, key(e))]
    return groups + list(pending.drain())
