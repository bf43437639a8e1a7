"""f-divergences and the drift scale they give DGflow.

With the density-ratio estimate ``r = p_g / mu = exp(-d)`` the DGflow drift is
``-grad f'(r) = r f''(r) grad d``, so each divergence contributes the scalar factor
``s(d) = r f''(r)`` (held constant, no gradient through it):

    KL:    f(r) = r log r                         s(d) = 1
    JS:    f(r) = r log r - (r+1) log((r+1)/2)    s(d) = sigmoid(d)
    logD:  f(r) = (r+1) log(r+1) - 2 log 2        s(d) = sigmoid(-d)
    chi2:  f(r) = (r-1)^2                         s(d) = 2 exp(-d)  (Pearson)

A new divergence only needs ``f`` and ``f_prime``: ``scale`` then comes from autograd.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor


class FDivergence:
    """An f-divergence ``D_f(mu || rho)`` given by its convex generator ``f``."""

    name: str = "f"
    constant_scale: float | None = None  # s(d) when it does not depend on d (KL: 1): the drift needs no per-sample factor

    def f(self, r: Tensor) -> Tensor:
        """The convex generator ``f(r)``, ``f(1) = 0``."""
        raise NotImplementedError

    def f_prime(self, r: Tensor) -> Tensor:
        """Its derivative ``f'(r)`` (the first variation DGflow's drift descends)."""
        raise NotImplementedError

    def scale(self, d: Tensor) -> Tensor:
        """``s(d) = r f''(r)`` at ``r = exp(-d)``; the generic version differentiates ``f_prime``."""
        with torch.enable_grad():
            r = torch.exp(-d.detach().double()).requires_grad_(True)
            (f2,) = torch.autograd.grad(self.f_prime(r).sum(), r)
        return (r * f2).detach().to(d.dtype)

    def __repr__(self) -> str:
        return f"{type(self).__name__}()"


class KL(FDivergence):
    """Kullback-Leibler: ``f(r) = r log r``, ``s(d) = 1``."""
    name = "KL"
    constant_scale = 1.0

    def f(self, r):
        return r * torch.log(r)

    def f_prime(self, r):
        return torch.log(r) + 1

    def scale(self, d):
        return torch.ones_like(d)


class JS(FDivergence):
    """Jensen-Shannon: ``f(r) = r log r - (r + 1) log((r + 1) / 2)``, ``s(d) = sigmoid(d)``."""
    name = "JS"

    def f(self, r):
        return r * torch.log(r) - (r + 1) * torch.log((r + 1) / 2)

    def f_prime(self, r):
        return torch.log(2 * r / (r + 1))

    def scale(self, d):
        return 1 / (1 + torch.exp(-d.detach()))  # sigmoid(d); this form is bit-identical across batch sizes


class LogD(FDivergence):
    """The log-D divergence of the non-saturating GAN: ``f(r) = (r + 1) log(r + 1) - 2 log 2``, ``s(d) = sigmoid(-d)``."""
    name = "logD"

    def f(self, r):
        return (r + 1) * torch.log(r + 1) - 2 * math.log(2)

    def f_prime(self, r):
        return torch.log(r + 1) + 1

    def scale(self, d):
        return 1 / (1 + torch.exp(d.detach()))  # sigmoid(-d)


class PearsonChi2(FDivergence):
    """Pearson chi-squared: ``f(r) = (r - 1)^2``, ``s(d) = 2 exp(-d)``."""
    name = "chi2"

    def f(self, r):
        return (r - 1) ** 2

    def f_prime(self, r):
        return 2 * (r - 1)


DIVERGENCES: dict[str, type[FDivergence]] = {
    "KL": KL,
    "JS": JS,
    "logD": LogD,
    "chi2": PearsonChi2,
}


def get_divergence(f: str | FDivergence) -> FDivergence:
    """Look up an f-divergence by name (``"KL"``, ``"JS"``, ``"logD"``, ``"chi2"``) or pass one through."""
    if isinstance(f, FDivergence):
        return f
    for name, cls in DIVERGENCES.items():
        if isinstance(f, str) and f.lower() == name.lower():
            return cls()
    raise ValueError(f"unknown f-divergence {f!r}; choose one of {sorted(DIVERGENCES)} "
                     "or pass an FDivergence instance")
