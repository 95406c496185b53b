"""Build the adapter a plan sizes, with fake weights, and read the run settings of a preset.

Sources of a target (``model``):
    * ``None`` or a published hub id: the shipped config-only folder of that checkpoint
      (:func:`stillguard.adapters.official.real_config`), built with ``from_config(folder,
      device="meta")``; no weights exist or are read;
    * a local folder: its config files only, the same way (weights in it are not read);
    * ``"tiny"``: the random test model (built on the CPU, kilobytes; with options it is saved to a
      temporary folder and reloaded, since ``tiny()`` takes none);
    * ``"toy"``: the shipped toy model; read with ``from_config`` when the target has it, else
      with ``from_pretrained`` (the toy's weights are a few megabytes).
Then :func:`.fake.materialise` swaps every tensor for a fake one on the planned device.
"""

from __future__ import annotations

import contextlib
import logging
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..errors import InputError, ModelError
from ..registry import ADAPTERS
from .fake import materialise


@contextlib.contextmanager
def quiet() -> Iterator[None]:
    """Silence diffusers' progress bars and notes, and fake-tensor failure logs (a failing plan
    raises anyway), restoring both afterwards."""
    from diffusers.utils import logging as dlog

    bars = dlog.is_progress_bar_enabled()
    level = dlog.get_verbosity()
    fake_log = logging.getLogger("torch._subclasses.fake_tensor")
    fake_level = fake_log.level
    dlog.disable_progress_bar()
    dlog.set_verbosity_error()
    fake_log.setLevel(logging.CRITICAL)
    try:
        yield
    finally:
        dlog.set_verbosity(level)
        fake_log.setLevel(fake_level)
        if bars:
            dlog.enable_progress_bar()


def has_from_config(cls: type) -> bool:
    """True when the adapter class implements the config-only build of the adapter contract."""
    from ..adapters.base import Adapter

    return getattr(cls.from_config, "__func__", None) is not Adapter.from_config.__func__


def config_source(target: str, model: str | None) -> Path:
    """The config-only folder for ``target``/``model`` (shipped, or a local folder)."""
    from ..adapters.official import real_config

    if model is not None and Path(model).expanduser().is_dir():
        folder = Path(model).expanduser()
        if not (folder / "model_index.json").is_file():
            raise InputError(
                f"{model!r} has no model_index.json: give a pipeline folder (its config files are "
                "enough; weights are not read)"
            )
        return folder
    return real_config(target, model)


def instantiate(
    target: str,
    model: str | None,
    *,
    dtype: torch.dtype,
    options: dict[str, Any],
    device: str | torch.device = "meta",
) -> tuple[Any, str]:
    """The adapter with real (or ``meta``) tensors, and a sentence saying where it came from.

    Config folders are built with ``from_config(folder, device=device)``: ``meta`` for the
    planner, a real device for random-weight calibration runs. ``tiny``/``toy`` are built on
    ``device`` (``meta`` means the CPU for them; :func:`build_adapter` makes them fake after);
    ``tiny`` without options is float32 whatever ``dtype`` says (the planner casts its fakes).

    Raises:
        ModelError: the target cannot be built from configs yet (no ``from_config``).
        InputError: unknown target, model or option.
    """
    from ..adapters import load_adapter

    cls = ADAPTERS.get(target)
    small = "cpu" if str(device) == "meta" else device
    if model == "tiny":
        if options:
            with tempfile.TemporaryDirectory(prefix="stillguard-plan-") as tmp:
                cls.tiny(device="cpu").save_pretrained(tmp)
                adapter = cls.from_pretrained(tmp, device=small, dtype=dtype, **options)
            adapter.model_id = "tiny"
        else:
            adapter = cls.tiny(device=small)
        return adapter, "tiny random test model"
    if model == "toy" and not has_from_config(cls):
        adapter = load_adapter(target, model="toy", device=small, dtype=dtype, **options)
        return adapter, "shipped toy model (its small weights read)"
    if not has_from_config(cls):
        raise ModelError(
            f"target {target!r} cannot be sized at real scale yet: its adapter has no "
            "from_config() (the config-only build); use --model tiny or toy meanwhile"
        )
    if model == "toy":
        from ..adapters import toy_folder

        folder = toy_folder()
    else:
        folder = config_source(target, model)
    try:
        adapter = cls.from_config(folder, device=device, dtype=dtype, **options)
    except TypeError as err:  # an option the adapter does not take
        raise InputError(f"{target} does not take the options {sorted(options)}: {err}") from None
    return adapter, f"config-only folder {folder.name!r} (no weights read)"


def build_adapter(
    target: str,
    model: str | None,
    *,
    dtype: torch.dtype,
    options: dict[str, Any],
    device: torch.device,
    mode: Any,
) -> tuple[Any, str]:
    """:func:`instantiate` on ``meta``/CPU, then every tensor made fake on ``device``."""
    adapter, source = instantiate(target, model, dtype=dtype, options=options, device="meta")
    materialise(adapter, mode, device, dtype)
    return adapter, source + ", made fake"


def preset_settings(name: str | None) -> dict[str, Any]:
    """The run settings of a preset (shipped name or ``.toml`` path) as a flat dict.

    Reads presets with :mod:`stillguard.app.config` (the planner is part of the app layer).
    """
    from ..app.config import load_preset

    cfg = load_preset(name or "default")
    loop = cfg.loop
    return {
        "steps": loop.steps,
        "eot_samples": loop.eot_samples if loop.eot else 1,
        "eps": loop.eps,
        "random_start": loop.random_start,
        "seed": loop.seed,
        "method": cfg.method_name,
        "method_options": dict(cfg.method_options),
        "space": cfg.space_name,
        "space_options": dict(cfg.space_options),
        "target": cfg.target_name,
        "target_options": dict(cfg.target_options),
        "preset": name or "default",
    }
