"""The protection-method contract and the helpers shared by the concrete methods.

A method is a dataclass whose fields are its options. :func:`stillguard.loop.protect` calls
:meth:`Method.check` (capabilities, before any work), then :meth:`Method.setup` once (no-grad
precompute from the clean image; it returns a :class:`State` that the loop hands back), then
:meth:`Method.start` (the starting point) and :meth:`Method.loss` at every PGD step. A method
object holds only its options: everything computed for one image lives in its :class:`State`, so
one method object can serve many images (and threads). The loss is always
*minimised*; a method that wants to maximise something returns its negative.

Shared choices (apply to every method unless its docstring says otherwise):
    * random draws (timesteps, noise, query subsets) come from the run's ``torch.Generator``, which
      lives on the CPU so that the same seed gives the same bytes on any device; tensors are moved
      to the adapter's device after drawing;
    * one timestep and one noise video are drawn per loss call, i.e. resampled at every PGD step
      (Vid-Freeze Eq. 8 states this; the other papers are silent, so we do the same everywhere);
    * target images for "pull toward an unrelated/low-quality image" losses are built by
      :func:`target_image` and are independent of the run's seed (a fixed target, so that two seeds
      optimise the same objective).

Batches (:func:`stillguard.loop.protect_batch`): a method whose :meth:`Method.batchable` is true
takes ``x`` ``(B,3,H,W)`` and a :class:`~stillguard.generators.Generators` (one generator per
image; :func:`draw` draws each image's timestep and noise from its own), and returns a loss of
shape ``(B,)``, one value per image that depends on that image only, with its terms per image
too (:func:`logged`). One image gives 0-dim values, as before. A method that is not batchable is
run one image at a time by ``protect_batch``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any, ClassVar

import torch
from torch import Tensor

from ..adapters.base import Adapter, Conditioning
from ..errors import CapabilityError, InputError
from ..generators import per_image
from ._target_image import TARGET_SEED as TARGET_SEED
from ._target_image import target_image as target_image

#: where the clean video latent ``z0`` of a diffusion training loss comes from: the candidate
#: (perturbed) image, so the gradient flows through ``z0`` and the conditioning (the loss as its
#: papers define it), or the clean image, fixed (the conditioning alone is attacked)
Z0_SOURCES = ("perturbed", "clean")
#: how attention maps may be recorded (see :meth:`stillguard.adapters.base.Adapter.capture`)
ATTENTION_MODES = ("exact", "sampled", "pooled")


class State(SimpleNamespace):
    """What :meth:`Method.setup` computed for one image (method-specific attributes)."""


@dataclass
class Method:
    """Base class of the protection methods (see the module docstring).

    Class attributes:
        requires: capabilities the adapter must ALL offer.
        requires_any: capabilities of which the adapter must offer at least one (empty: none needed).
        default_space: the perturbation space used when ``protect(space=None)``.
        optimizes: False for baselines that draw their perturbation without a loss (``noise``).
        loop_overrides: loop settings the method fixes (``noise``: zero steps, random start).
    """

    registry_name: ClassVar[str] = "method"
    requires: ClassVar[frozenset[str]] = frozenset()
    requires_any: ClassVar[frozenset[str]] = frozenset()
    default_space: ClassVar[str] = "rgb"
    optimizes: ClassVar[bool] = True
    loop_overrides: ClassVar[dict[str, Any]] = {}

    def batchable(self) -> bool:
        """True when :meth:`loss` takes a batch of images and returns one loss per image (see the
        module docstring); ``protect_batch`` runs other methods one image at a time."""
        return False

    def check(self, adapter: Adapter) -> None:
        """Raise :class:`CapabilityError` if ``adapter`` lacks what this method needs."""
        caps = frozenset(getattr(adapter, "capabilities", frozenset()))
        missing = sorted(self.requires - caps)
        name = getattr(adapter, "registry_name", type(adapter).__name__)
        if missing:
            raise CapabilityError(
                f"method {self.registry_name!r} needs {', '.join(missing)} but target {name!r} offers "
                f"only {sorted(caps) or 'nothing'}; pick another target or another method"
            )
        if self.requires_any and not (self.requires_any & caps):
            raise CapabilityError(
                f"method {self.registry_name!r} needs one of {', '.join(sorted(self.requires_any))} "
                f"but target {name!r} offers only {sorted(caps) or 'nothing'}; pick another target "
                "or another method"
            )

    def prepare(self, adapters: Sequence[Adapter | None]) -> None:
        """Called once with every target of a run (one, or an ensemble's members) after
        :meth:`check` and before any work. Default: nothing. A method whose behaviour depends on
        the set of targets resolves it here (``amortized`` picks the protector trained for them)."""

    def setup(self, adapter: Adapter, x_clean: Tensor, generator: torch.Generator) -> State:
        """No-grad precompute from the clean image ``(1,3,H,W)`` (reference features, targets...)."""
        return State()

    def start(
        self, space: Any, x: Tensor, generator: torch.Generator, random_start: bool
    ) -> Tensor:
        """The starting point of the loop in the space's own units (default: the space's own)."""
        return space.init(x, generator, random_start)

    def loss(
        self, adapter: Adapter, x: Tensor, generator: torch.Generator, state: State
    ) -> tuple[Tensor, dict[str, float]]:
        """Scalar loss to minimise for the candidate image ``x`` ``(1,3,H,W)``, plus named terms."""
        raise NotImplementedError

    def report(self, state: State) -> dict[str, Any]:
        """JSON-able facts about one finished run that the options alone do not tell (which terms
        ran, the weights a method chose, a diagnostic); the loop stores them in the result's
        ``config["method_report"]`` (so in the sidecar). Default: nothing."""
        return {}

    def describe(self) -> dict[str, Any]:
        """JSON-able name and options, for sidecars and reports."""
        out: dict[str, Any] = {"name": self.registry_name}
        for f in dataclasses.fields(self):
            if f.init:
                out[f.name] = jsonable(getattr(self, f.name))
        return out


# ---------------------------------------------------------------------------------- helpers


def jsonable(value: Any) -> Any:
    """Convert option values (paths, tuples, tensors) into JSON-able ones."""
    if isinstance(value, Path):
        return str(value)
    if isinstance(value, (list, tuple)):
        return [jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): jsonable(v) for k, v in value.items()}
    if isinstance(value, Tensor):
        return value.tolist()
    return value


def resolve_layers(spec: str | Sequence[str | int], names: Sequence[str], what: str) -> list[str]:
    """Pick layer names from ``names`` (network order).

    ``spec`` is ``"all"``, ``"first:N"``, ``"last:N"``, a comma-separated string of names or indices,
    or a list of names / indices (negative indices count from the end).
    """
    names = list(names)
    if not names:
        raise CapabilityError(f"the target exposes no {what} layers")
    if isinstance(spec, str):
        s = spec.strip()
        if s == "all":
            return names
        for prefix in ("first:", "last:"):
            if s.startswith(prefix):
                try:
                    n = int(s[len(prefix) :])
                except ValueError:
                    raise InputError(f"bad layer spec {spec!r}: expected {prefix}N") from None
                if n < 1:
                    raise InputError(f"bad layer spec {spec!r}: N must be >= 1")
                return names[:n] if prefix == "first:" else names[-n:]
        spec = [p.strip() for p in s.split(",") if p.strip()]
    out: list[str] = []
    for item in spec:
        if isinstance(item, int) or (isinstance(item, str) and item.lstrip("-").isdigit()):
            i = int(item)
            if not -len(names) <= i < len(names):
                raise InputError(f"{what} layer index {i} out of range: there are {len(names)}")
            out.append(names[i])
        elif item in names:
            out.append(item)
        else:
            from ..registry import close_matches

            raise InputError(f"unknown {what} layer {item!r}: {close_matches(str(item), names)}")
    return out


def attention_kind(adapter: Adapter, kind: str = "auto") -> str:
    """The :meth:`Adapter.layer_names` kind of the attention a motion loss should use.

    ``"auto"`` takes the coupled joint attention when the adapter has it (CogVideoX), else the
    temporal attention (SVD's decoupled form).
    """
    caps = adapter.capabilities
    if kind == "auto":
        if "attention-joint" in caps:
            return "attention"
        if "attention-temporal" in caps:
            return "attention-temporal"
        raise CapabilityError(
            f"target {adapter.registry_name!r} exposes neither joint nor temporal attention"
        )
    table = {"joint": ("attention", "attention-joint"), "temporal": ("attention-temporal",) * 2}
    if kind not in table:
        raise InputError(f"attention kind must be auto, joint or temporal, got {kind!r}")
    layer_kind, cap = table[kind]
    if cap not in caps:
        raise CapabilityError(f"target {adapter.registry_name!r} does not offer {cap}")
    return layer_kind


def draw(adapter: Adapter, generator: Any) -> tuple[Tensor, Tensor]:
    """One training timestep and one noise video per image for :meth:`Adapter.denoise`, each image
    drawing from its own generator (a plain generator: one image).

    Shape:
        returns ``(timestep (B,), noise (B, F_lat, C_lat, h, w))``.
    """
    t = per_image(lambda g: adapter.sample_timesteps(1, g), generator)
    noise = per_image(lambda g: torch.randn(adapter.latent_shape(1), generator=g), generator)
    return t, noise.to(adapter.device, adapter.dtype)


def check_z0(value: str) -> None:
    """Refuse a ``z0`` option outside :data:`Z0_SOURCES`."""
    if value not in Z0_SOURCES:
        raise InputError(f"z0 must be one of {', '.join(Z0_SOURCES)}, got {value!r}")


def training_z0(adapter: Adapter, x_clean: Tensor, source: str) -> Tensor | None:
    """``z0`` for :meth:`Adapter.denoise`: ``None`` (the candidate image's own static-video latent,
    with gradient) for ``"perturbed"``, the clean image's detached latent for ``"clean"``."""
    return static_latent(adapter, x_clean) if source == "clean" else None


def sub_generator(generator: torch.Generator) -> torch.Generator:
    """A fresh generator seeded from ``generator``, so two captures can draw the same query subset."""
    seed = int(torch.randint(0, 2**62, (1,), generator=generator))
    return torch.Generator().manual_seed(seed)


def clone_generator(g: torch.Generator) -> torch.Generator:
    """An independent generator in the same state as ``g``."""
    out = torch.Generator(device=g.device)
    out.set_state(g.get_state())
    return out


def flat(captured: dict[str, list[Tensor]], names: Sequence[str]) -> list[Tensor]:
    """All recorded tensors of ``names`` (every denoiser call), in layer then call order."""
    out: list[Tensor] = []
    for n in names:
        out.extend(captured.get(n, []))
    if not out:
        raise CapabilityError(f"capture recorded nothing for layers {list(names)}")
    return out


@torch.no_grad()
def static_latent(adapter: Adapter, x: Tensor) -> Tensor:
    """The clean static-video latent of ``x``: what :meth:`Adapter.denoise` uses as ``z0`` by default.

    Shape:
        ``x`` ``(B,3,H,W)`` -> ``(B, F_lat, C_lat, h, w)``.
    """
    g = torch.Generator().manual_seed(0)  # z0 does not depend on t or the noise
    t, noise = draw(adapter, g)
    batch = x.shape[0]
    return adapter.denoise(x, t.expand(batch), noise.expand(batch, *noise.shape[1:])).z0.detach()


def scalar(t: Tensor) -> float:
    """A loss term as a plain float for the history (detached, no autograd warning)."""
    return float(t.detach())


def logged(t: Tensor) -> float | Tensor:
    """A loss term for the history: a float for one image (0-dim), a detached ``(B,)`` tensor with
    one value per image for a batch."""
    return float(t.detach()) if t.dim() == 0 else t.detach().float()


def detach_conditioning(c: Conditioning) -> Conditioning:
    """A copy of ``c`` with every tensor detached (for no-grad references)."""
    emb = c.image_embeds.detach() if c.image_embeds is not None else None
    extra = {k: v.detach() for k, v in c.extra.items()}
    return Conditioning(c.image_latents.detach(), c.first_latent.detach(), emb, extra)
