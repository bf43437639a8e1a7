"""DDLS: Langevin dynamics on the latent energy of the GAN's implicit energy-based model.

Che et al., "Your GAN is Secretly an Energy-based Model and You Should Use Discriminator
Driven Latent Sampling", NeurIPS 2020.

    E(z) = -log p_Z(z) - d(g(z))
    for n = 0 .. steps-1:
        eps_n = eps * decay^n
        z' = z - (eps_n / 2) grad E(z) + sqrt(eps_n) * noise_scale * xi,   xi ~ N(0, I)
        with metropolis=True (MALA): accept z' with probability
            min(1, exp(E(z) - E(z')) q(z | z') / q(z' | z)),  q(a | b) = N(a; b - (eps_n/2) grad E(b), eps_n I)

With an optimal discriminator the stationary law of ``g(z)`` is the data law; the
Metropolis correction makes the chain exact for any step size (it requires
``noise_scale = 1``). Runs in latent space only (``log p_g(x)`` is unknown in data space).
The proposal is the Langevin step shared with DGflow (:mod:`dgflow.refiners.langevin`); each
step reports which moves were taken and the log Metropolis ratio of its proposals
(:class:`~dgflow.refiners.base.StepInfo`: the run's ``acceptance_rate``, the pilot's statistic).
``eps="auto"`` / ``steps="auto"``: chosen once from a pilot run (:mod:`dgflow.tuning`;
``eps`` for a Metropolis acceptance rate of 0.574, the optimum of MALA).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import torch
from torch import Tensor

from ..checks import check_positive
from ..rng import SampleNoise
from ..rows import select_rows
from ..target import Target
from .base import Refiner, StepInfo
from .langevin import langevin_step


class DDLSState(NamedTuple):
    """The latents, the logit and its gradient, and the log density ``-E(z)`` of the current step."""
    z: Tensor
    x: Tensor
    logit: Tensor
    log_density: Tensor  # -E(z) = log p_Z(z) + d(g(z))
    score: Tensor | None  # -grad E(z)


@dataclass(frozen=True)
class DDLS(Refiner):
    """DDLS: Langevin dynamics on ``E(z) = -log p_Z(z) - d(g(z))`` (step ``eps``, optional MALA correction)."""
    eps: float | str = 0.01
    steps: int | str = 100
    noise_scale: float = 1.0
    decay: float = 1.0
    metropolis: bool = False
    name: ClassVar[str] = "ddls"
    step_size_name: ClassVar[str] = "eps"
    auto_grid: ClassVar[tuple[int, int]] = (-3, 2)
    auto_criterion: ClassVar[str] = "mala"  # eps="auto": MALA's optimal acceptance rate

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("noise_scale", self.noise_scale, allow_zero=True)
        check_positive("decay", self.decay)
        if self.metropolis and self.noise_scale != 1.0:
            raise ValueError("DDLS with metropolis=True needs noise_scale=1 (the Metropolis test assumes "
                             f"Langevin proposals), got noise_scale={self.noise_scale}")

    def logit_grad(self, target: Target, state: DDLSState) -> Tensor | None:
        return None if state.score is None else state.score - target.prior.score(state.z)

    def log_acceptance(self, state: DDLSState, new: DDLSState, n: int) -> Tensor | None:
        """``log`` of the Metropolis acceptance ratio of the move ``state -> new`` (a Langevin proposal)."""
        if state.score is None or new.score is None:
            return None
        eps = self.eps * self.decay**n
        var = eps * self.noise_scale**2 if self.noise_scale > 0 else eps
        log_q_forward = -(new.z - (state.z + 0.5 * eps * state.score)).flatten(1).pow(2).sum(1) / (2 * var)
        log_q_reverse = -(state.z - (new.z + 0.5 * eps * new.score)).flatten(1).pow(2).sum(1) / (2 * var)
        return new.log_density - state.log_density + log_q_reverse - log_q_forward

    def evaluate(self, target: Target, z: Tensor, grad: bool) -> DDLSState:
        """The state at ``z``: the energy ``-log p_Z(z) - d(g(z))`` and, with ``grad``, its score."""
        if target.prior is None or target.transform is None:
            raise ValueError("DDLS runs in latent space only (its energy needs log p_Z); use space='latent'")
        ev = target.evaluate(z, grad=grad)
        score = target.prior.score(z) + ev.grad if grad else None
        return DDLSState(ev.z, ev.x, ev.logit, target.prior.log_prob(z) + ev.logit, score)

    def init(self, target: Target, z: Tensor) -> DDLSState:
        return self.evaluate(target, z, grad=self.steps > 0)

    def step(self, target: Target, state: DDLSState, n: int, noise: SampleNoise) -> tuple[DDLSState, StepInfo]:
        eps = self.eps * self.decay**n
        proposal = langevin_step(state.z, 0.5 * eps * state.score, math.sqrt(eps) * self.noise_scale, noise, n, "ddls")
        if not self.metropolis:
            new = self.evaluate(target, target.constrain(proposal), grad=self.needs_grad(n))
            return new, StepInfo(torch.ones_like(new.logit, dtype=torch.bool), self.log_acceptance(state, new, n))
        new = self.evaluate(target, proposal, grad=True)
        log_alpha = self.log_acceptance(state, new, n)
        log_u = torch.log(noise.uniform(step=n, stream="ddls-accept", dtype=torch.float64)).to(log_alpha)
        accept = torch.nan_to_num(log_alpha, nan=-math.inf) > log_u
        return select_rows(accept, new, state), StepInfo(accept, log_alpha)
