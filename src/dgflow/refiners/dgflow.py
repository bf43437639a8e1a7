"""DGflow: Euler-Maruyama simulation of the entropy-regularised f-divergence gradient flow.

Ansari, Ang & Soh, "Refining Deep Generative Models via Discriminator Gradient Flow", ICLR 2021.

    for n = 0 .. steps-1:
        d  = d(g(z_n))                                   # density-ratio logit, p_g/mu = exp(-d)
        z_{n+1} = z_n + eta * s(d) * grad_z d(g(z_n)) + sqrt(2 gamma eta) * xi,   xi ~ N(0, I)

which is ``z_{n+1} = z_n - eta grad_z f'(p_g/mu) + sqrt(2 gamma eta) xi`` with
``s(d) = r f''(r)`` at ``r = exp(-d)`` (see :mod:`dgflow.divergences`). In data space
(``space="data"``) the same update runs on ``x``. The update is the Langevin step shared with
DDLS (:mod:`dgflow.refiners.langevin`). Latents of a bounded prior are
clipped back into its support after each step. ``eta="auto"`` / ``steps="auto"``: chosen
once from a pilot run (:mod:`dgflow.tuning`).
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any, ClassVar

from torch import Tensor

from ..checks import check_positive
from ..divergences import FDivergence, get_divergence
from ..rng import SampleNoise
from ..rows import per_sample
from ..target import Evaluation, Target
from .base import Refiner, StepInfo
from .langevin import langevin_step


@dataclass(frozen=True)
class DGflow(Refiner):
    """DGflow: Euler-Maruyama steps of the f-divergence gradient flow (step ``eta``, entropy weight ``gamma``)."""
    f: str | FDivergence = "KL"
    eta: float | str = 0.1
    gamma: float = 0.01
    steps: int | str = 25
    divergence: FDivergence = field(init=False, repr=False)
    name: ClassVar[str] = "dgflow"
    step_size_name: ClassVar[str] = "eta"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("gamma", self.gamma, allow_zero=True)
        object.__setattr__(self, "divergence", get_divergence(self.f))  # derived from f, once

    def init(self, target: Target, z: Tensor) -> Evaluation:
        return target.evaluate(z, grad=self.steps > 0)

    def step(self, target: Target, state: Evaluation, n: int, noise: SampleNoise) -> tuple[Evaluation, StepInfo]:
        z = state.z
        s = self.divergence.constant_scale  # a constant s(d) (KL: 1): (eta * s) * grad, two passes fewer, same bits
        scale = s if s is not None else per_sample(self.divergence.scale(state.logit).to(z.dtype), z)
        drift = self.eta * scale * state.grad
        z = target.constrain(langevin_step(z, drift, math.sqrt(2 * self.gamma * self.eta), noise, n, "dgflow"))
        return target.evaluate(z, grad=self.needs_grad(n)), StepInfo()

    def options(self) -> dict[str, Any]:
        out = super().options()
        out.pop("divergence")
        out["f"] = self.divergence.name
        return out
