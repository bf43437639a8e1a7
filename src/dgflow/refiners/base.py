"""The refiner interface: a method is a small frozen dataclass with ``init`` and ``step``.

In the manner of BlackJAX, a refiner's *state* is a named tuple whose first fields are
``z`` (the position), ``x`` (the sample) and ``logit`` (``d(x)``), and ``step`` returns the
new state with a :class:`StepInfo`; the refine loop (:mod:`dgflow.loop`) owns batching,
seeding, recording and progress, and the refiner owns only the update::

    state = refiner.init(target, z0)
    for n in range(refiner.steps):
        state, info = refiner.step(target, state, n, noise)

A refiner is immutable: ``prepare`` (statistics shared by all samples, e.g. DOT's ``k_eff``)
and the automatic step size (:mod:`dgflow.tuning`) return a new refiner
(``dataclasses.replace``), computed once before any batch, so results do not depend on how
samples are batched. Each method names its step size (``step_size_name``: DGflow's ``eta``,
DDLS's ``eps``, DOT's ``lr``); ``"auto"`` there or in ``steps`` asks for a pilot run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from ..checks import check_step_size, check_steps
from ..rng import SampleNoise
from ..target import Target

AUTO = "auto"
STOPS = ("distance", "logit-level")  # how steps="auto" stops (see dgflow.tuning)

# (stream name, count) -> (positions, target bound to their labels)
DrawInitial = Callable[[str, int], tuple[Tensor, Target]]


def is_auto(value: Any) -> bool:
    """Whether an option's value is ``"auto"`` (any case)."""
    return isinstance(value, str) and value.lower() == AUTO


class StepInfo(NamedTuple):
    """What one step reports besides the new state (``None``: not applicable to the method).

    ``accepted``: per sample, whether the move was taken (DDLS; its Metropolis test with
    ``metropolis=True``). ``log_acceptance``: per sample, ``log`` of the Metropolis acceptance
    ratio of the step's Langevin proposal (DDLS, when both ends carry their score).
    """

    accepted: Tensor | None = None
    log_acceptance: Tensor | None = None


@dataclass(frozen=True)
class Refiner:
    """Base class of the refinement methods, with the options of the automatic step size (keyword-only).

    ``heldout``: held-out real samples (the generator's output shape); ``steps="auto"`` stops where the pilot's
    samples are closest to them (``stop="distance"``, the default, which needs them) or where the mean logit reaches
    their mean logit (``stop="logit-level"``; without them, the importance-weighted level of the pilot's logits).
    ``features``: the feature map of the distance (a module or function ``[B, ...] -> [B, k]``; default: the samples
    flattened). ``check_every``: the distance is evaluated every this many pilot steps.
    ``pilot``: pilot samples. ``max_steps``: the most steps ``steps="auto"`` may choose.
    ``min_steps``: the trust region's number of steps (see :mod:`dgflow.tuning`).
    """

    heldout: Tensor | None = field(default=None, kw_only=True, repr=False)
    stop: str = field(default="distance", kw_only=True)
    features: Callable[[Tensor], Tensor] | None = field(default=None, kw_only=True, repr=False)
    check_every: int = field(default=2, kw_only=True)
    pilot: int = field(default=256, kw_only=True)
    max_steps: int = field(default=100, kw_only=True)
    min_steps: int = field(default=20, kw_only=True)

    name: ClassVar[str] = "refiner"
    step_size_name: ClassVar[str]  # the field holding the step size, in the method's paper's name
    auto_grid: ClassVar[tuple[int, int]] = (-3, 1)  # "auto" tries default * 10^(k/2) for k = 2*high .. 2*low
    auto_criterion: ClassVar[str] = "trust-region"  # or "mala" (see dgflow.tuning)
    # every method also has the field ``steps: int | str`` (declared after its own options, with its default)

    def __post_init__(self) -> None:
        check_step_size(self.step_size_name, self.step_size)
        check_steps(self.steps)
        for name in ("pilot", "max_steps", "min_steps", "check_every"):
            value = getattr(self, name)
            least = 2 if name == "pilot" else 1
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ValueError(f"{name} must be a whole number >= {least}, got {value!r}")
        if self.stop not in STOPS:
            raise ValueError(f"stop must be one of {STOPS}, got {self.stop!r}")
        if self.features is not None and not callable(self.features):
            raise TypeError("features must be a module or function mapping a batch of samples [B, ...] to features "
                            f"[B, k], got {type(self.features).__name__}")
        if self.heldout is not None:
            if not isinstance(self.heldout, Tensor) or self.heldout.ndim < 1 or len(self.heldout) < 2:
                raise ValueError("heldout must be a tensor of at least 2 held-out real samples shaped like the "
                                 f"generator's output, got {type(self.heldout).__name__}")
            if not torch.isfinite(self.heldout).all():
                raise ValueError("heldout (held-out real samples) contains NaN or inf")

    @property
    def step_size(self) -> float | str:
        """The step size (the field named by ``step_size_name``)."""
        return getattr(self, self.step_size_name)

    @classmethod
    def default_step_size(cls) -> float:
        """The step size's default (the centre of the ``"auto"`` grid)."""
        return next(f.default for f in dataclasses.fields(cls) if f.name == cls.step_size_name)

    def wants_auto(self) -> bool:
        """Whether the step size or ``steps`` is ``"auto"`` (to be chosen by a pilot run)."""
        return is_auto(self.step_size) or is_auto(self.steps)

    def prepare(self, draw: DrawInitial) -> tuple[Refiner, dict[str, Any]]:
        """This refiner with the statistics shared by all samples, computed from draws of the initial
        distribution, and those statistics for the log (none by default)."""
        return self, {}

    def init(self, target: Target, z: Tensor) -> Any:
        """The state before the first step (evaluates the logit, and its gradient if needed, at ``z``)."""
        raise NotImplementedError

    def step(self, target: Target, state: Any, n: int, noise: SampleNoise) -> tuple[Any, StepInfo]:
        """One update ``n`` (0-based) of every sample in ``state``; ``noise`` holds each sample's own random stream."""
        raise NotImplementedError

    def logit_grad(self, target: Target, state: Any) -> Tensor | None:
        """``grad_z d(g(z))`` at ``state`` (``None`` where the state holds no gradient, e.g. after the last step)."""
        return state.grad

    def needs_grad(self, n: int) -> bool:
        """Whether the state after step ``n`` needs ``grad_z d`` (not after the last step)."""
        return n + 1 < self.steps

    def options(self) -> dict[str, Any]:
        """The method's settings as a plain dict (recorded in results and run folders)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
        if isinstance(out.get("heldout"), Tensor):  # data, not a setting: the evidence in info["auto"] names it
            out["heldout"] = None
        if out.get("features") is not None:  # a module, not a setting: info["auto"]["features"] describes it
            out["features"] = None
        return out


def build(registry: dict[str, type], kind: str, method: str, options: dict[str, Any]) -> Any:
    """Instantiate ``registry[method](**options)`` with errors that name the fix."""
    key = method.lower() if isinstance(method, str) else method
    lookup = {k.lower(): v for k, v in registry.items()}
    if key not in lookup:
        raise ValueError(f"unknown {kind} method {method!r}; choose one of {sorted(registry)}")
    cls = lookup[key]
    valid = {f.name for f in dataclasses.fields(cls) if f.init}
    unknown = sorted(set(options) - valid)
    if unknown:
        raise TypeError(f"unknown option(s) {unknown} for method {method!r}; valid options: {sorted(valid)}")
    return cls(**options)


def iterate(method: Refiner, target: Target, state: Any, noise: SampleNoise) -> Iterator[tuple[int, Any, StepInfo]]:
    """``(n, state_{n+1}, info_n)`` for ``n = 0 .. method.steps - 1``; each step runs only when asked for."""
    for n in range(method.steps):
        state, info = method.step(target, state, n, noise)
        yield n, state, info
