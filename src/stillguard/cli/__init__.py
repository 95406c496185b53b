"""The ``stillguard`` command line: a thin front over the library (typer + rich).

Commands: ``protect``, ``verify``, ``demo``, ``list``, ``env``. Every user-facing error is one line
on stderr (``error: ...``) with exit code 2 (bad input, option, preset or model) or 1 (a failure
while running, or some inputs of a batch failed); ``--debug`` adds the traceback. Heavy imports
(torch, diffusers) happen inside the commands, so ``--help`` and usage errors stay fast.

Honest defaults: ``protect`` and ``verify`` target the real checkpoint of the target model; when its
weights are not on this machine the command fails before any work and says how to get them. The
tiny/toy models are accepted with a warning: protection computed on them does not carry over.
"""

from __future__ import annotations

from ..app.models import check_model_available
from . import info_cmd, protect_cmd, verify_cmd  # noqa: F401  (registers the commands)
from ._common import app
from .info_cmd import environment, list_plugins

__all__ = ["app", "check_model_available", "environment", "list_plugins", "main"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="stillguard")


if __name__ == "__main__":
    main()
