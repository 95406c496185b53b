"""What a bench runs: targets, methods, attacks, seeds, metric options, checked before any work.

Spellings (the command line's; the same strings work from Python):

* ``--targets cogvideox-i2v:toy,wan-i2v:toy-wan``: ``NAME[:MODEL]``, the model a local folder, a hub
  id already on this machine, ``toy``/``toy-wan``/``tiny``; without ``:MODEL`` the target's real
  checkpoint (refused when not on this machine, as ``protect`` does);
* ``--methods vid-freeze,rollout-freeze:unroll=2:steps=25,noise``: ``NAME[:key=value...]``; the keys
  ``steps``, ``eps`` and ``preset`` set the run (as ``protect --steps/--eps/--preset``), any other key
  is a method option (``--set method.KEY=VALUE``); ``--steps``/``--eps``/``--preset`` give defaults;
* ``--attacks none,jpeg75,resize,blur,noisy-upscale``: short names of
  :data:`stillguard.transforms.ATTACKS` or transform specs (``jpeg:60``); when a spec needs commas
  (``diffpure:model=DIR,t=0.2``) separate the attacks with ``;`` instead;
* ``--seeds 0,1``: generation seeds (clean and protected videos of one seed share the noise).

Choices: a method may appear twice with different options; its label (``rollout-freeze:unroll=2``)
is what the table shows. The protection seed is the preset's (0), independent of ``--seeds``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import asdict, dataclass, field
from typing import Any

from ...errors import InputError

DEMO = ("tiny", "toy", "toy-wan")
RUN_KEYS = ("steps", "eps", "preset")


@dataclass(frozen=True)
class MethodSpec:
    """One method row: its label, registry name, run settings and method options."""

    label: str
    name: str
    steps: int | None = None
    eps: str | None = None
    preset: str = "default"
    options: tuple[tuple[str, Any], ...] = ()


@dataclass
class BenchSpec:
    """A validated bench: every name checked, every attack built once."""

    targets: list[tuple[str, str]]
    methods: list[MethodSpec]
    attacks: list[str]
    seeds: list[int]
    device: str = "cpu"
    dtype: str = "float32"
    gpu_memory: str | None = None
    face_detector: str = "hog"
    face_upsample: int = 1
    face_min_side: int = 0
    encoders: dict[str, str] = field(default_factory=dict)
    num_frames: int | None = None
    num_inference_steps: int | None = None

    def to_dict(self) -> dict[str, Any]:
        return json.loads(json.dumps(asdict(self), default=str))

    def key(self) -> str:
        """What every cell's result depends on beyond its own target, method and photo."""
        d = self.to_dict()
        for k in ("targets", "methods", "gpu_memory"):
            d.pop(k)
        return hashlib.sha256(json.dumps(d, sort_keys=True).encode()).hexdigest()[:16]


def _split(text: str, what: str, sep: str = ",") -> list[str]:
    items = [t.strip() for t in str(text).split(sep) if t.strip()]
    if not items:
        raise InputError(f"--{what} is empty; give at least one, separated by commas")
    return items


def _value(text: str) -> Any:
    for kind in (int, float):
        try:
            return kind(text)
        except ValueError:
            pass
    return {"true": True, "false": False}.get(text.lower(), text)


def parse_targets(text: str) -> list[tuple[str, str]]:
    from ... import plugins  # noqa: F401  (fills the registries)
    from ...registry import ADAPTERS
    from ..models import default_model

    out = []
    for item in _split(text, "targets"):
        name, _, model = item.partition(":")
        ADAPTERS.get(name.strip())  # unknown target: one line with close matches
        out.append((name.strip(), model.strip() or default_model(name.strip())))
    if len(set(out)) != len(out):
        raise InputError(f"--targets {text!r} names a target twice")
    return out


def parse_methods(text: str, steps: int | None, eps: str | None, preset: str) -> list[MethodSpec]:
    from ... import plugins  # noqa: F401
    from ...registry import METHODS

    out = []
    for item in _split(text, "methods"):
        name, *parts = [p.strip() for p in item.split(":")]
        METHODS.get(name)
        run: dict[str, Any] = {"steps": steps, "eps": eps, "preset": preset}
        opts = []
        for part in parts:
            key, eq, raw = part.partition("=")
            if not eq or not key.strip():
                raise InputError(
                    f"--methods {item!r}: write NAME:key=value (e.g. rollout-freeze:unroll=2)"
                )
            key = key.strip()
            if key in RUN_KEYS:
                run[key] = raw.strip() if key != "steps" else _int(raw, item)
            else:
                opts.append((key, _value(raw.strip())))
        out.append(MethodSpec(item, name, run["steps"], run["eps"], run["preset"], tuple(opts)))
    if len({m.label for m in out}) != len(out):
        raise InputError(f"--methods {text!r} names a method twice with the same options")
    return out


def _int(raw: str, item: str) -> int:
    try:
        return int(raw)
    except ValueError:
        raise InputError(f"--methods {item!r}: steps must be a whole number") from None


def parse_attacks(text: str) -> list[str]:
    from ...errors import StillguardError
    from ...transforms import ATTACKS, parse_attack

    out = _split(text, "attacks", ";" if ";" in text else ",")
    for a in out:
        try:
            parse_attack(a)
        except StillguardError as e:
            names = ", ".join(ATTACKS)
            raise InputError(f"--attacks {a!r}: {e} (short names: {names})") from None
    if len(set(out)) != len(out):
        raise InputError(f"--attacks {text!r} names an attack twice")
    return out


def parse_seeds(text: str) -> list[int]:
    try:
        seeds = [int(s) for s in _split(text, "seeds")]
    except ValueError:
        raise InputError(f"--seeds {text!r}: give integers separated by commas, e.g. 0,1") from None
    if len(set(seeds)) != len(seeds):
        raise InputError(f"--seeds {text!r} repeats a seed")
    return seeds
