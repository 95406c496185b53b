"""Deprecated: collecting inputs is :mod:`stillguard.app.run.inputs`, naming outputs
:mod:`stillguard.app.run.names` (kept one release)."""

from . import outputs
from ._moved import forward
from .run import inputs, names

__getattr__ = forward(
    __name__,
    {"collect": inputs, "check_writable": outputs, "BatchItem": names, "tagged": names,
     "SUFFIX": names},
)  # fmt: skip
