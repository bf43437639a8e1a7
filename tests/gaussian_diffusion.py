"""Shared test bed of the diffusion tests: Gaussian data, whose EDM denoiser and noisy log-density are exact."""

from __future__ import annotations

import math

import torch

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
