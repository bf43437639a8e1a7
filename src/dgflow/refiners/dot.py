"""DOT: Discriminator Optimal Transport.

Tanaka, "Discriminator optimal transport", NeurIPS 2019.

    k_eff = max over pairs (z1, z2) of |d(g(z2)) - d(g(z1))| / ||z2 - z1||     (estimated once;
            the mean of `k_eff_rounds` such maxima over `k_eff_pairs` pairs each)
    for each start z_y, minimise by SGD or Adam, for `steps` updates:
        H(z) = -d(g(z)) / k_eff + || z - z_y + delta ||_2
        after each update: clip z to `bounds` (if given)

Constraints. With a uniform prior in latent space ``z`` is clipped to ``[-1, 1]`` after each
update (as the reference code). With a normal prior in latent space the radial part of
``grad H`` is removed so ``z`` stays on its shell: dgflow removes it exactly,
``g - z <g, z> / |z|^2``; the reference code (``Transporter_in_latent``) subtracts
``z <g, z> / 11.31`` (``sqrt(128)``, hard-coded), which equals the projection only where
``|z|^2 = 11.31`` — for a 128-d standard-normal latent (``|z|^2 ~ 128``) it removes about 11
times the radial part, reversing it. ``bounds=(lo, hi)`` clips every coordinate after each
update, in either space; the reference 2-D demo (``Transporter_in_target``) clips ``x`` to
``[-2, 2]``. ``space="data"`` gives target-space DOT (used for 2-D data), with ``k_eff``
estimated on pairs of samples ``x = g(z)``. The reference 2-D demo uses Adam (lr 0.01,
betas (0, 0.9)) for 100 updates and ``k_eff`` = the mean of 10 maxima over 100 pairs:
``refine(..., method="dot", space="data", optimizer="adam", lr=0.01, steps=100, k_eff_rounds=10,
bounds=(-2, 2))`` (the Adam update is PyTorch's; in Chainer's the ``eps`` 1e-8 enters as
``eps / sqrt(1 - beta2^t)``, at most 3.2e-8, a difference only for gradients near that size).
``lr="auto"`` / ``steps="auto"``: chosen once from a pilot run (:mod:`dgflow.tuning`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, ClassVar, NamedTuple

import torch
from torch import Tensor

from ..checks import check_int, check_positive
from ..priors import NormalPrior
from ..rng import SampleNoise
from ..rows import per_sample
from ..target import Target
from .base import DrawInitial, Refiner, StepInfo


class DOTState(NamedTuple):
    """The latents, their starting points ``z_y``, the logit and the optimiser's moments."""
    z: Tensor
    x: Tensor
    logit: Tensor
    grad: Tensor | None
    z_start: Tensor  # z_y
    m: Tensor  # Adam first moment
    v: Tensor  # Adam second moment


@dataclass(frozen=True)
class DOT(Refiner):
    """DOT: per-sample descent on ``H(z) = -d(g(z)) / k_eff + ||z - z_y + delta||`` (SGD or Adam)."""
    lr: float | str = 0.01
    steps: int | str = 10
    optimizer: str = "sgd"
    betas: tuple[float, float] = (0.0, 0.9)
    delta: float = 0.001
    k_eff: float | None = None
    k_eff_pairs: int = 100
    k_eff_rounds: int = 1
    bounds: tuple[float, float] | None = None
    remove_radial: bool | None = None  # None: only for a normal prior in latent space
    name: ClassVar[str] = "dot"
    step_size_name: ClassVar[str] = "lr"

    def __post_init__(self) -> None:
        super().__post_init__()
        check_positive("delta", self.delta, allow_zero=True)
        if self.optimizer not in ("sgd", "adam"):
            raise ValueError(f"DOT optimizer must be 'sgd' or 'adam', got {self.optimizer!r}")
        if self.k_eff is not None:
            check_positive("k_eff", self.k_eff)
        for name in ("k_eff_pairs", "k_eff_rounds"):
            value = getattr(self, name)
            check_int(name, value, 1)
        if self.bounds is not None:
            try:
                lo, hi = (float(b) for b in self.bounds)
            except (TypeError, ValueError):
                raise ValueError(f"bounds must be (low, high) or None, got {self.bounds!r}") from None
            if not lo < hi:
                raise ValueError(f"bounds must be (low, high) with low < high, got {self.bounds!r}")
            object.__setattr__(self, "bounds", (lo, hi))  # normalised once, at construction

    def prepare(self, draw: DrawInitial) -> tuple[DOT, dict[str, Any]]:
        """This DOT with ``k_eff`` estimated (unless given): the mean of ``k_eff_rounds`` maxima over
        ``k_eff_pairs`` pairs each; the first round is the same with any ``k_eff_rounds``."""
        if self.k_eff is not None:
            return self, {"k_eff": self.k_eff}
        count = self.k_eff_pairs * self.k_eff_rounds
        z1, target = draw("dot-pairs-1", count)
        z2, _ = draw("dot-pairs-2", count)
        dist = (z2 - z1).flatten(1).norm(dim=1)
        slope = (target.logit(z2) - target.logit(z1)).abs() / dist.clamp_min(1e-12)
        k_eff = float(slope.reshape(self.k_eff_rounds, self.k_eff_pairs).amax(dim=1).mean())
        if not k_eff > 0:
            raise ValueError("DOT could not estimate k_eff: the discriminator gave the same logit for every pair; "
                             "pass k_eff=... explicitly")
        return dataclasses.replace(self, k_eff=k_eff), {"k_eff": k_eff}

    def init(self, target: Target, z: Tensor) -> DOTState:
        if self.k_eff is None:
            raise RuntimeError("DOT.prepare must run before init (k_eff is not set)")
        ev = target.evaluate(z, grad=self.steps > 0)
        zeros = torch.zeros_like(z)
        return DOTState(ev.z, ev.x, ev.logit, ev.grad, z.detach().clone(), zeros, zeros)

    def step(self, target: Target, state: DOTState, n: int, noise: SampleNoise) -> tuple[DOTState, StepInfo]:
        z = state.z
        offset = z - state.z_start + self.delta
        grad_h = -state.grad / self.k_eff + offset / per_sample(offset.flatten(1).norm(dim=1), z)
        remove_radial = self.remove_radial
        if remove_radial is None:
            remove_radial = target.space == "latent" and isinstance(target.prior, NormalPrior)
        if remove_radial:
            radial = (grad_h * z).flatten(1).sum(1) / z.flatten(1).pow(2).sum(1).clamp_min(1e-12)
            grad_h = grad_h - per_sample(radial, z) * z
        m, v = state.m, state.v
        if self.optimizer == "sgd":
            z = z - self.lr * grad_h
        else:
            b1, b2 = self.betas
            m = b1 * m + (1 - b1) * grad_h
            v = b2 * v + (1 - b2) * grad_h**2
            m_hat, v_hat = m / (1 - b1 ** (n + 1)), v / (1 - b2 ** (n + 1))
            z = z - self.lr * m_hat / (v_hat.sqrt() + 1e-8)
        if self.bounds is not None:
            z = z.clamp(*self.bounds)
        ev = target.evaluate(target.constrain(z), grad=self.needs_grad(n))
        return DOTState(ev.z, ev.x, ev.logit, ev.grad, state.z_start, m, v), StepInfo()
