"""The adapters' old public import paths, kept working for one release as deprecated aliases.

When the families moved into their folders, modules such as ``stillguard.adapters.cogvideox_i2v``
and ``stillguard.adapters.nets.dc_unet`` moved with them. Rather than a file for each, one import
finder answers for the old names (:data:`MOVED`): importing an old path warns once
(``DeprecationWarning``, naming the new path) and gives a module whose names are the new
modules' very objects (``from stillguard.adapters.nets.dc_unet import DCUNet`` is the class of
``stillguard.adapters.dynamicrafter.nets.unet``). The finder sits last on ``sys.meta_path``, so it
only ever answers for names no real module has. Remove it, and the table, in the next release.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.util
import sys
import warnings
from types import ModuleType
from typing import Any

PACKAGE = "stillguard.adapters"

#: old module under ``stillguard.adapters`` -> the new modules that hold its names, in order
MOVED: dict[str, tuple[str, ...]] = {
    "cogvideox_i2v": ("cogvideox", "cogvideox.adapter"),
    "wan_i2v": ("wan", "wan.adapter"),
    "ltx_i2v": ("ltx", "ltx.adapter"),
    "hunyuan_i2v": ("hunyuan", "hunyuan.adapter"),
    "dynamicrafter_convert": ("dynamicrafter.convert",),
    "nets": (),
    "nets.dc_attention": ("dynamicrafter.nets.attention",),
    "nets.dc_clip": ("dynamicrafter.nets.clip",),
    "nets.dc_config": ("dynamicrafter.config", "dynamicrafter.tiny"),
    "nets.dc_ddim": ("dynamicrafter.ddim",),
    "nets.dc_layers": ("dynamicrafter.capture",),
    "nets.dc_load": ("dynamicrafter.weights",),
    "nets.dc_model": ("dynamicrafter.nets.model",),
    "nets.dc_unet": ("dynamicrafter.nets.unet",),
    "nets.dc_vae": ("dynamicrafter.nets.vae",),
    "nets.opensora_capture": ("open_sora.capture",),
    "nets.opensora_layers": ("open_sora.nets.layers",),
    "nets.opensora_pipeline": ("open_sora.pipeline", "open_sora.tiny"),
    "nets.opensora_rflow": ("open_sora.rflow",),
    "nets.opensora_stdit3": ("open_sora.nets.stdit3",),
    "nets.opensora_vae": ("open_sora.nets.vae",),
    "nets.opensora_vae_temporal": ("open_sora.nets.vae_temporal",),
}
#: the old packages (their old sub-modules are aliases too)
PACKAGES = frozenset({"nets"})


def new_paths(old: str) -> str:
    """Where the names of the old module ``old`` (relative to the package) live now."""
    targets = MOVED[old] or ("dynamicrafter.nets", "open_sora.nets")
    return " and ".join(f"{PACKAGE}.{t}" for t in targets)


def _user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning raised in :meth:`_Aliases.exec_module` at the
    import statement. ``warnings`` itself skips the frames of ``importlib._bootstrap``; the ones
    of ``importlib.import_module`` (and of this module) are counted here."""
    frame, level = sys._getframe(2), 2
    while frame is not None:
        name = frame.f_code.co_filename
        if "importlib" in name and "_bootstrap" in name:
            frame = frame.f_back  # skipped by warnings, not counted
        elif name in (__file__, importlib.__file__):
            frame, level = frame.f_back, level + 1
        else:
            break
    return level


class _Aliases(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds and loads the deprecated aliases of :data:`MOVED`."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> Any:
        old = fullname.removeprefix(PACKAGE + ".")
        if old == fullname or old not in MOVED:
            return None
        return importlib.util.spec_from_loader(fullname, self, is_package=old in PACKAGES)

    def create_module(self, spec: Any) -> None:
        return None  # the default module

    def exec_module(self, module: ModuleType) -> None:
        old = module.__name__.removeprefix(PACKAGE + ".")
        new = new_paths(old)
        warnings.warn(
            f"{module.__name__} moved to {new}; the old path is deprecated and goes in the next "
            "release",
            DeprecationWarning,
            stacklevel=_user_stacklevel(),
        )
        targets = [importlib.import_module(f"{PACKAGE}.{t}") for t in MOVED[old]]

        def __getattr__(name: str) -> Any:  # noqa: N807 - a module's __getattr__ (PEP 562)
            for t in targets:
                if hasattr(t, name):
                    return getattr(t, name)
            raise AttributeError(f"module {module.__name__!r} (moved to {new}) has no {name!r}")

        module.__getattr__ = __getattr__  # type: ignore[method-assign]
        module.__dir__ = lambda: sorted({n for t in targets for n in dir(t)})  # type: ignore[method-assign]
        module.__doc__ = f"Deprecated alias: moved to {new}."


def install() -> None:
    """Put the alias finder last on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _Aliases) for f in sys.meta_path):
        sys.meta_path.append(_Aliases())


install()
