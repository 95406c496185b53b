"""File names as stillguard shows them: escaped when they hold anything a terminal would act on.

A file name may hold a newline, a tab, an escape sequence or bytes that are not text (shown by
Python as lone surrogates); printed as is, it splits a terminal line or a summary, recolours the
terminal, or makes printing fail. :func:`shown_name` returns the name unchanged when every character
is printable, else the name as Python's ``repr`` writes it (quoted, ``\\n``, ``\\x1b``,
``\\udcff``), like ``ls`` quoting such names. Every message that shows a name (CLI lines,
summaries, errors, web messages) goes through it; data (``--json``, sidecars, the manifest) keeps
the real name.
"""

from __future__ import annotations

import os
from typing import Any


def shown_name(path: str | os.PathLike[str] | Any) -> str:
    """``path`` as text safe to show on one line: unchanged if printable, else its ``repr``."""
    text = os.fspath(path) if isinstance(path, os.PathLike) else str(path)
    if isinstance(text, bytes):
        text = os.fsdecode(text)
    return text if text.isprintable() else repr(text)


def one_line(text: object) -> str:
    """``text`` as one printable line: whitespace runs become one space, other non-printable
    characters (escape sequences, undecodable bytes) are escaped as ``repr`` writes them.

    The last guard before a message reaches the terminal, for text stillguard did not build
    (a library's exception that quotes a raw file name).
    """
    flat = " ".join(str(text).split())
    if flat.isprintable():
        return flat
    return "".join(c if c.isprintable() else repr(c)[1:-1] for c in flat)
