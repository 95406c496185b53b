"""Errors a user can act on. The CLI prints ``str(err)`` as one line and exits non-zero."""

from __future__ import annotations


class StillguardError(Exception):
    """Base class: the message says what went wrong, why, and how to fix it."""


class InputError(StillguardError):
    """A file or option given by the user cannot be used (broken image, bad value, ...)."""


class ModelError(StillguardError):
    """A model cannot be loaded (missing weights, pickle-only weights, wrong folder, ...)."""


class CapabilityError(StillguardError):
    """A method needs something the chosen adapter does not offer."""
