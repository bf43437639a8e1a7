"""DGflow (Ansari et al.): every test about this one method.

* closed form: one step in 1-D (rho0 = N(0, 1), mu = N(0.5, 0.7^2), exact logit) decreases
  D_f(mu || rho) at the exact rate of the Wasserstein gradient flow, for KL, JS and logD; with
  d = 0 (p_g = mu) the drift vanishes and the noise is exactly sqrt(2 gamma eta) xi.
* fidelity: the update against a transcription of the authors' Algorithm 1, on the
  networks and noise of fidelity_models.py (stream "dgflow").
* option errors: an unknown f-divergence.

Elsewhere: the f-divergences DGflow's drift uses (tests/test_divergences.py), eta="auto" and
steps="auto" (tests/test_auto.py, where DGflow is the default method), the Langevin step DGflow
shares with DDLS (tests/test_method_interface.py).
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import stats

import dgflow
from dgflow import refine
from dgflow.rng import SampleNoise

import misuse
from fidelity_models import B, LATENT, SEED, Critic, Generator, fixed_latents, logit_and_grad, report
from gaussian_laws import KS_ALPHA
from misuse import Z


# -------------------------------------------------------------------------------------- closed form


M1, S1 = 0.5, 0.7  # mu = N(0.5, 0.7^2), rho0 = N(0, 1)


N_GRID = 20001


def _log_mu(x):
    return -(x - M1) ** 2 / (2 * S1**2) - math.log(S1) - 0.5 * math.log(2 * math.pi)


def _log_rho0(x):
    return -(x**2) / 2 - 0.5 * math.log(2 * math.pi)


def _d1(x):
    x = x[:, 0]
    return _log_mu(x) - _log_rho0(x)


def _dgflow_change(name: str, eta: float):
    """(D_before, D_after, exact first-order rate) for one DGflow step on the quantile grid."""
    F = dgflow.DIVERGENCES[name]()
    z = stats.norm.ppf((np.arange(N_GRID) + 0.5) / N_GRID)  # rho0-quantile grid: grid mean ~ E_rho0
    # float64 throughout: the O(eta) part of T' = 1 + O(eta) would drown in float32 round-off
    res = dgflow.refine(lambda v: v, _d1, z=torch.from_numpy(z)[:, None], method="dgflow", f=F,
                        eta=eta, gamma=0.0, steps=1, progress=False, save_interval=None)
    y = res.x[:, 0].numpy()
    assert res.x.dtype == torch.float64
    t_prime = np.gradient(y, z)  # second-order finite differences on the non-uniform grid
    assert np.all(t_prime > 0)  # the step map is monotone, so rho1(T(z)) = rho0(z) / T'(z)

    def mean_f_over_r(log_r):  # D_f(mu || rho) = int mu f(rho/mu) = E_rho[f(r) / r], r = rho / mu
        r = torch.exp(torch.from_numpy(log_r))
        return float((F.f(r) / r).mean())

    d_before = mean_f_over_r(_log_rho0(z) - _log_mu(z))
    d_after = mean_f_over_r(_log_rho0(z) - np.log(t_prime) - _log_mu(y))

    # Exact dissipation of the Wasserstein gradient flow of D_f(mu || .):
    #   d/dt D = -E_rho[ |d/dx f'(r(x))|^2 ],  r = rho0 / mu,
    # with f' and d/dx taken by autograd of the divergence's own f (independent of its
    # f_prime / scale, which is what the refiner uses).
    x = torch.from_numpy(z).requires_grad_(True)
    r = torch.exp(_log_rho0(x) - _log_mu(x))
    (f_prime,) = torch.autograd.grad(F.f(r).sum(), r, create_graph=True)
    (grad_x,) = torch.autograd.grad(f_prime.sum(), x)
    rate = -float((grad_x**2).mean())
    return d_before, d_after, rate


@pytest.mark.parametrize("name", ["KL", "JS", "logD"])
def test_dgflow_step_decreases_divergence_at_the_exact_rate(name):
    """One DGflow step (gamma = 0) in 1-D: generator = identity, rho0 = N(0, 1), mu = N(0.5, 0.7^2),
    exact d = log mu - log rho0; y_i = T(z_i) on the rho0-quantile grid z_i = Phi^{-1}((i + 1/2)/N).

    (Pearson chi2 is left out: E_rho0[f(r)/r] = E_rho0[(r - 1)^2 / r] diverges for s = 0.7.)

    Tolerance for (D_after - D_before) / eta vs the exact rate: the remainder of the Taylor
    expansion in eta is O(eta) relative, i.e. ~0.1-0.5% for eta = 1e-3 and O(1) densities; the
    quantile-grid quadrature error is O(1/N) ~ 1e-4 (tail mass beyond the outer nodes 2.5e-5)
    and np.gradient's error is O(h^2) with h <= 0.02. 2% is well above both, and far below
    what a wrong drift would give (a factor 2 is a 100% error, a wrong sign
    raises D, and JS's scale s(d) = sigmoid(d) is <= 0.65 everywhere here, so dropping it
    changes the JS rate by more than 50%).
    Halving eta must roughly halve the relative error if it is the O(eta) remainder.
    """
    d0, d1, rate = _dgflow_change(name, 1e-3)
    if name == "KL":  # the grid reproduces KL(rho0 || mu) = log s + (1 + m^2) / (2 s^2) - 1/2
        exact_kl = math.log(S1) + (1 + M1**2) / (2 * S1**2) - 0.5
        assert abs(d0 - exact_kl) < 1e-3 * exact_kl
    assert d1 < d0, f"{name}: a DGflow step increased D_f from {d0} to {d1}"
    err1 = ((d1 - d0) / 1e-3 - rate) / rate
    assert abs(err1) < 0.02, f"{name}: rate {(d1 - d0) / 1e-3} vs exact {rate} (relative error {err1:.4f})"

    d0b, d1b, _ = _dgflow_change(name, 5e-4)
    err2 = ((d1b - d0b) / 5e-4 - rate) / rate
    # first-order remainder: err(eta/2) / err(eta) -> 1/2; allow 0.3 .. 0.7 for the O(eta^2) and grid terms
    assert 0.3 < err2 / err1 < 0.7, (err1, err2)


def test_dgflow_fixed_point_and_noise_scale():
    """With d = 0 (p_g = mu) the drift vanishes: gamma = 0 leaves z unchanged, and gamma > 0
    adds exactly sqrt(2 gamma eta) xi per step (a random walk with variance 2 gamma eta steps)."""
    z = torch.zeros(4000, 2)
    d0 = lambda x: 0.0 * x.sum(1)  # noqa: E731  (depends on x, so autograd reaches z)
    still = dgflow.refine(lambda v: v, d0, z=z, method="dgflow", gamma=0.0, eta=0.1, steps=3, progress=False)
    assert torch.equal(still.z, z)
    eta, gamma, steps = 0.1, 0.05, 5
    moved = dgflow.refine(lambda v: v, d0, z=z, method="dgflow", gamma=gamma, eta=eta, steps=steps, progress=False)
    var = 2 * gamma * eta * steps
    x = moved.z.double().numpy() / math.sqrt(var)
    # 8000 N(0, 1) draws: SE of the mean 1/sqrt(8000) = 0.011 (5 SE = 0.056),
    # SE of the variance sqrt(2/8000) = 0.016 (5 SE = 0.079)
    assert abs(x.mean()) < 0.056
    assert abs(x.var() - 1) < 0.079
    assert stats.kstest(x.ravel(), "norm").pvalue > KS_ALPHA


# ------------------------------------------------------------------ fidelity to the authors' update


def dgflow_transcription(G, D, z, f, eta, gamma, steps, noise):
    """Ansari et al., Algorithm 1: z <- z + eta s(d) grad_z d(g(z)) + sqrt(2 eta) sqrt(gamma) xi."""
    for n in range(steps):
        d, grad = logit_and_grad(G, D, z)
        s = {"KL": torch.ones_like(d), "JS": 1 / (1 + 1 / d.exp()), "logD": 1 / (1 + d.exp())}[f]
        xi = noise.normal((LATENT,), step=n, stream="dgflow", dtype=torch.float64)
        z = z + eta * s[:, None] * grad + math.sqrt(2 * eta) * math.sqrt(gamma) * xi
    return z


@pytest.mark.parametrize("f", ["KL", "JS", "logD"])
def test_dgflow_matches_the_authors_update(f):
    G, D, z0 = Generator(), Critic(), fixed_latents()
    res = refine(G, D, z=z0, method="dgflow", f=f, eta=0.1, gamma=0.01, steps=7, seed=SEED, save_interval=None,
                 progress=False, batch_size=4)
    ref = dgflow_transcription(G, D, z0, f, 0.1, 0.01, 7, SampleNoise(SEED, torch.arange(B)))
    diff = float((res.z - ref).abs().max())
    report(f"DGflow {f}", diff)
    assert diff < 1e-12


# ------------------------------------------------------------------------------------ option errors


def test_unknown_f_divergence():
    with pytest.raises(ValueError, match=r"unknown f-divergence 'wasserstein'.*\['JS', 'KL', 'chi2', 'logD'\]"):
        misuse.refine(z=Z, f="wasserstein")
