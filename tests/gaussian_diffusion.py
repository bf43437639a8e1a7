"""Shared test bed of the diffusion tests (tests/test_diffusion.py, tests/methods/test_guidance.py, BYO diffusion):
Gaussian data, whose EDM denoiser and noisy log-density are exact.

Data N(m, s^2 I) noised by sigma is N(m, (s^2 + sigma^2) I), so the exact denoiser is
D(x, sigma) = m + s^2 / (s^2 + sigma^2) (x - m) and the exact noisy log-ratio between the
data and a (deliberately wrong) Gaussian model N(m', s'^2 I) is
log N(x; m, s^2 + sigma^2) - log N(x; m', s'^2 + sigma^2). Guidance with that ratio and
weight 1 in both Heun stages turns the wrong model's score into the data's exact score.

Statistical checks (``assert_law``): n = 4000 i.i.d. samples (a deterministic sampler maps i.i.d.
latents to i.i.d. samples); per coordinate the sample mean has SE s / sqrt(n) and the sample std
SE ~ s / sqrt(2 n); we allow 5 SE (a correct sampler fails a check with probability ~6e-7),
and a KS test at alpha = 1e-3. The probability-flow ODE started at sigma_max = 80 maps
N(0, 80^2) exactly onto N(m (1 - s / sqrt(s^2 + 80^2)), (s 80 / sqrt(s^2 + 80^2))^2); those are
the reference laws. Checks that need the exact law use 100 Heun steps: with EDM's 18 steps
the sampler inflates the std of this narrow Gaussian by ~5% (measured: 0.528 vs 0.500; 0.501
at 100 steps), a discretisation error of the method, not a bug.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from scipy import stats

M, S = [1.0, -0.5], 0.5          # the data
M_WRONG, S_WRONG = [0.0, 0.0], 1.0  # the deliberately wrong score model
FULL = (0.0, math.inf)


class Gaussian:
    """Exact EDM denoiser and noisy log-density of data N(m, s^2 I)."""

    def __init__(self, m, s):
        self.m, self.s = torch.as_tensor(m, dtype=torch.float64), float(s)

    def __call__(self, x, sigma, labels=None):
        return self.m + (self.s**2 / (self.s**2 + sigma**2))[:, None] * (x - self.m)

    def log_p(self, x, sigma):
        var = (self.s**2 + sigma**2)[:, None]
        return (-0.5 * (x - self.m) ** 2 / var - 0.5 * torch.log(2 * math.pi * var)).sum(-1)


TARGET, WRONG = Gaussian(M, S), Gaussian(M_WRONG, S_WRONG)


def exact_log_ratio(x, sigma, labels=None):
    """``log p_data(x; sigma) - log p_model(x; sigma)``: the exact DG discriminator logit."""
    return TARGET.log_p(x, sigma) - WRONG.log_p(x, sigma)


N = 4000


def latents(n=N, seed=0):
    return torch.randn(n, 2, dtype=torch.float64, generator=torch.Generator().manual_seed(seed))


def assert_law(x: torch.Tensor, m=M, s=S, sigma_max=80.0) -> None:
    """``x`` [n, 2] is consistent with the sampler's exact output law for data N(m, s^2 I) (see module doc)."""
    x = x.numpy()
    shrink = s / math.sqrt(s**2 + sigma_max**2)
    mean, std = np.asarray(m) * (1 - shrink), s * sigma_max / math.sqrt(s**2 + sigma_max**2)
    n = len(x)
    dev_mean = (x.mean(0) - mean) / (std / math.sqrt(n))
    dev_std = (x.std(0, ddof=1) - std) / (std / math.sqrt(2 * n))
    assert np.all(np.abs(dev_mean) < 5), f"mean {x.mean(0)} vs {mean} ({dev_mean} SE)"
    assert np.all(np.abs(dev_std) < 5), f"std {x.std(0)} vs {std} ({dev_std} SE)"
    for j in range(x.shape[1]):
        assert stats.kstest(x[:, j], "norm", args=(mean[j], std)).pvalue > 1e-3
