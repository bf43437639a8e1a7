"""Shared fixtures: Gaussian problems whose exact log density ratio is known in closed form.

Setup used by the closed-form tests: latent prior p_Z = N(0, I_k), affine generator
g(z) = A z + b, so p_g = N(b, A A^T); target mu = N(m, s^2 I). The exact discriminator
logit is

    d(x) = log mu(x) - log p_g(x)
         = -|x - m|^2 / (2 s^2) - k log s + 1/2 (x - b)^T (A A^T)^{-1} (x - b) + log|det A|

(the (2 pi)^{k/2} factors cancel). d is bounded above iff I/s^2 - (A A^T)^{-1} is positive
definite, i.e. iff the smallest singular value of A exceeds s.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from torch import nn


class AffineGaussianCase:
    """p_Z = N(0, I), g(z) = A z + b, mu = N(m, s^2 I), exact logit d = log mu - log p_g."""

    def __init__(self, A, b, m, s):
        self.A = np.asarray(A, dtype=np.float64)
        self.b = np.asarray(b, dtype=np.float64)
        self.m = np.asarray(m, dtype=np.float64)
        self.s = float(s)
        self.k = len(self.b)
        # bounded-above logit (needed by exact rejection sampling and the MH independence sampler)
        assert np.linalg.svd(self.A, compute_uv=False).min() > self.s
        self._A = torch.tensor(self.A)
        self._b = torch.tensor(self.b)
        self._m = torch.tensor(self.m)
        self._cov_g_inv = torch.linalg.inv(self._A @ self._A.T)
        self._logdet_A = float(np.log(abs(np.linalg.det(self.A))))

    # ---------------------------------------------------------------- models
    def generator(self, z):
        return (z.double() @ self._A.T + self._b).to(z.dtype)

    def log_mu(self, x):
        x = x.double()
        return (-((x - self._m) ** 2).sum(-1) / (2 * self.s**2) - self.k * math.log(self.s)
                - 0.5 * self.k * math.log(2 * math.pi))

    def log_pg(self, x):
        x = x.double()
        u = x - self._b
        return (-0.5 * ((u @ self._cov_g_inv) * u).sum(-1) - self._logdet_A
                - 0.5 * self.k * math.log(2 * math.pi))

    def discriminator(self, x):
        return (self.log_mu(x) - self.log_pg(x)).to(x.dtype)

    # ---------------------------------------------------------------- exact laws
    @property
    def mu_mean(self):
        return self.m

    @property
    def mu_cov(self):
        return self.s**2 * np.eye(self.k)

    @property
    def latent_target_mean(self):
        """The latent target p_Z(z) exp(d(g(z))) / Z.

        p_Z(z) / p_g(A z + b) = |det A| is constant, so the latent target is proportional to
        mu(A z + b): z = A^{-1}(x - b) with x ~ mu, i.e. N(A^{-1}(m - b), s^2 (A^T A)^{-1}).
        """
        return np.linalg.solve(self.A, self.m - self.b)

    @property
    def latent_target_cov(self):
        return self.s**2 * np.linalg.inv(self.A.T @ self.A)

    def d_max(self):
        """sup_x d(x), attained where grad d = 0: (x - m)/s^2 = (A A^T)^{-1}(x - b)."""
        P = np.linalg.inv(self.A @ self.A.T)
        x = np.linalg.solve(np.eye(self.k) / self.s**2 - P, self.m / self.s**2 - P @ self.b)
        return float(self.discriminator(torch.tensor(x)[None])[0])


GAUSSIAN_CASES = {
    "identity": dict(A=np.eye(2), b=[0.0, 0.0], m=[0.5, -0.3], s=0.7),
    "affine": dict(A=[[1.2, 0.3], [-0.2, 0.9]], b=[0.3, -0.5], m=[0.5, -0.3], s=0.7),
}


@pytest.fixture(params=sorted(GAUSSIAN_CASES))
def gauss_case(request) -> AffineGaussianCase:
    return AffineGaussianCase(**GAUSSIAN_CASES[request.param])


@pytest.fixture
def identity_case() -> AffineGaussianCase:
    return AffineGaussianCase(**GAUSSIAN_CASES["identity"])


# -------------------------------------------------------------------------------- tiny networks


class TinyGenerator(nn.Module):
    """2 -> 16 -> 2 MLP (smooth, so gradients are nonzero everywhere)."""

    def __init__(self, k: int = 2, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(k, 16), nn.Tanh(), nn.Linear(16, 2))

    def forward(self, z):
        return self.net(z)


class TinyDiscriminator(nn.Module):
    """2 -> 16 -> 1 MLP returning logits shaped [B, 1]."""

    def __init__(self, seed: int = 1):
        super().__init__()
        torch.manual_seed(seed)
        self.net = nn.Sequential(nn.Linear(2, 16), nn.Tanh(), nn.Linear(16, 1))

    def forward(self, x):
        return self.net(x)


@pytest.fixture
def tiny_models():
    return TinyGenerator(), TinyDiscriminator()


# ------------------------------------------------------------------ batch-invariant tiny networks
#
# nn.Linear on the CPU picks different BLAS kernels for different batch sizes, so g(z)[i]
# can differ in the last bit between a batch of 1 and a batch of 64 (measured: ~1e-7) - a
# property of the BLAS, not of dgflow. Bit-identity tests therefore use layers that compute
# each row by the same elementwise product and last-axis sum whatever the batch size.


class RowLinear(nn.Module):
    def __init__(self, n_in: int, n_out: int):
        super().__init__()
        self.weight = nn.Parameter(torch.randn(n_out, n_in) / math.sqrt(n_in))
        self.bias = nn.Parameter(0.1 * torch.randn(n_out))

    def forward(self, x):
        return (x[:, None, :] * self.weight).sum(-1) + self.bias


class RowMLP(nn.Module):
    """n_in -> hidden -> n_out with tanh, batch-invariant; input is flattened."""

    def __init__(self, n_in: int = 2, n_out: int = 2, hidden: int = 16, seed: int = 0):
        super().__init__()
        torch.manual_seed(seed)
        self.l1 = RowLinear(n_in, hidden)
        self.l2 = RowLinear(hidden, n_out)

    def forward(self, x):
        return self.l2(torch.tanh(self.l1(x.flatten(1))))


@pytest.fixture
def row_models():
    """(generator 2 -> 2, discriminator 2 -> [B, 1]) that are bitwise batch-invariant."""
    return RowMLP(2, 2, seed=0), RowMLP(2, 1, seed=1)


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module (``pytestmark = pytest.mark.usefixtures("one_thread")``): small
    tensor ops are slower with several threads on a busy machine (measured 4 s vs 100 s)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
