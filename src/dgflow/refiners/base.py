"""The refiner interface: a method is a small dataclass with ``init`` and ``step``.

In the manner of BlackJAX, a refiner's *state* is a named tuple whose first fields are
``z`` (the position), ``x`` (the sample) and ``logit`` (``d(x)``); the driver
(:func:`dgflow.refine`) owns batching, seeding, recording and progress, and the
refiner owns only the update:

    state = refiner.init(target, z0)
    for n in range(refiner.steps):
        state = refiner.step(target, state, n, noise)

``prepare`` computes statistics shared by all samples (DOT's ``k_eff``, the step size and
number of steps chosen by ``"auto"``, see :mod:`dgflow.refiners.auto`) once, before any
batch, so results do not depend on how samples are batched.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any, NamedTuple

from torch import Tensor

from ..rng import SampleNoise
from ..target import Target

# (stream name, count) -> (positions, target bound to their labels)
DrawInitial = Callable[[str, int], tuple[Tensor, Target]]


class Refiner:
    """Base class of the refinement methods (subclasses are dataclasses)."""

    steps: int
    name: str = "refiner"

    def prepare(self, draw: DrawInitial) -> dict[str, Any]:
        """Compute shared statistics from draws of the initial distribution; returns them for the log."""
        return {}

    def init(self, target: Target, z: Tensor) -> NamedTuple:
        """The state before the first step (evaluates the logit, and its gradient if needed, at ``z``)."""
        raise NotImplementedError

    def step(self, target: Target, state: Any, n: int, noise: SampleNoise) -> NamedTuple:
        """One update ``n`` (0-based) of every sample in ``state``; ``noise`` holds each sample's own random stream."""
        raise NotImplementedError

    def logit_grad(self, target: Target, state: Any) -> Tensor | None:
        """``grad_z d(g(z))`` at ``state`` when the state holds it (for the automatic step size)."""
        return getattr(state, "grad", None)

    def needs_grad(self, n: int) -> bool:
        """Whether the state after step ``n`` needs ``grad_z d`` (not after the last step)."""
        return n + 1 < self.steps

    def options(self) -> dict[str, Any]:
        """The method's settings as a plain dict (recorded in results and run folders)."""
        out = {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}  # type: ignore[arg-type]
        if isinstance(out.get("heldout"), Tensor):  # data, not a setting: the evidence in info["auto"] names it
            out["heldout"] = None
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
