"""The ``stillguard`` command line: a thin front over the library (typer + rich).

Commands (one module each, or a pair sharing one):

* ``protect`` (:mod:`.protect_cmd`): protect images or a folder; writes ``NAME.protected.png`` +
  ``NAME.protected.json`` (+ ``manifest.jsonl`` for folders, resumable);
* ``verify`` (:mod:`.verify_cmd`): generate clean vs protected videos with the same seeds (also
  after purifications) and compare them;
* ``demo`` (:mod:`.verify_cmd`): protect the bundled sample photo against the shipped toy model and
  measure the result;
* ``list`` (:mod:`.info_cmd`): the plug-ins and presets with their options and defaults;
* ``env`` (:mod:`.info_cmd`): versions, torch threads, CUDA and the package folder (bug reports);
* ``convert`` (:mod:`.convert_cmd`): an official DynamiCrafter ``model.ckpt`` -> ``.safetensors``
  (weights-only read, never full unpickling);
* ``web`` (:mod:`.web_cmd`): the web page (gradio) over the same library calls;
* ``bench`` (:mod:`.bench_cmd`): protect photos with several methods against several targets,
  attack them, generate and measure; a table, a report, resumable;
* ``train-protector`` (:mod:`.train_protector_cmd`): train a network that protects a photo in one
  forward pass (``protect --method amortized``);
* ``plan`` (:mod:`.plan_cmd`): whether a protection fits a GPU and how long it takes, planned on
  fake tensors from the target's published configuration (no weights, no GPU).

Every user-facing error is one line on stderr (``error: ...``) with exit code 2 (bad input,
option, preset or model) or 1 (a failure while running, or some inputs of a batch failed);
``--debug`` adds the traceback. diffusers, gradio and the model weights load inside the commands
that need them.

Honest defaults: ``protect`` and ``verify`` target the real checkpoint of the target model; when its
weights are not on this machine the command fails before any work and says how to get them. The
tiny/toy models are accepted with a warning: protection computed on them does not carry over.
"""

from __future__ import annotations

from ..app.models import check_model_available
from . import (  # noqa: F401  (registers the commands)
    bench_cmd,
    convert_cmd,
    info_cmd,
    plan_cmd,
    protect_cmd,
    train_protector_cmd,
    verify_cmd,
    web_cmd,
)
from ._common import app
from .info_cmd import environment, list_plugins

__all__ = ["app", "check_model_available", "environment", "list_plugins", "main"]


def main() -> None:
    """Console-script entry point."""
    app(prog_name="stillguard")


if __name__ == "__main__":
    main()
