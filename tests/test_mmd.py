"""The unbiased MMD^2 / KID estimator (dgflow.mmd, exported by dgflow.metrics) against closed forms."""

from __future__ import annotations

import math

import pytest
import torch

from dgflow.metrics import MMDReference, difference_se, kid, mmd2_unbiased


def poly_expectation(mu1: torch.Tensor, s1: float, mu2: torch.Tensor, s2: float) -> float:
    """E (X.Y/d + 1)^3 for independent X ~ N(mu1, s1^2 I), Y ~ N(mu2, s2^2 I) in d dimensions.

    With u = X.Y: E u = a, E u^2 = d s1^2 s2^2 + s1^2 |mu2|^2 + s2^2 |mu1|^2 + a^2,
    E u^3 = a^3 + 3 a (s2^2 |mu1|^2 + s1^2 |mu2|^2 + s1^2 s2^2 (d + 2)), a = mu1.mu2
    (condition on Y: u ~ N(mu1.Y, s1^2 |Y|^2), then take the Gaussian moments of Y).
    """
    d = len(mu1)
    a, n1, n2 = float(mu1 @ mu2), float(mu1 @ mu1), float(mu2 @ mu2)
    e1 = a
    e2 = d * s1**2 * s2**2 + s1**2 * n2 + s2**2 * n1 + a**2
    e3 = a**3 + 3 * a * (s2**2 * n1 + s1**2 * n2 + s1**2 * s2**2 * (d + 2))
    return 1 + 3 * e1 / d + 3 * e2 / d**2 + e3 / d**3


def poly_mmd2(mu1, s1, mu2, s2) -> float:
    return (poly_expectation(mu1, s1, mu1, s1) + poly_expectation(mu2, s2, mu2, s2)
            - 2 * poly_expectation(mu1, s1, mu2, s2))


def draws(seeds: int, m: int, n: int, d: int, mu2: torch.Tensor, s2: float, kernel: str = "polynomial"):
    out = []
    for seed in range(seeds):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(m, d, generator=gen, dtype=torch.float64)
        y = mu2 + s2 * torch.randn(n, d, generator=gen, dtype=torch.float64)
        out.append(mmd2_unbiased(x, y, kernel))
    return torch.tensor([e.mmd2 for e in out]), torch.tensor([e.se for e in out])


def test_closed_form_moment_check():
    # the closed form itself, against a large Monte Carlo of the kernel (not of the estimator)
    gen = torch.Generator().manual_seed(0)
    mu1, mu2 = torch.tensor([0.5, -1.0, 0.2]), torch.tensor([1.0, 0.3, -0.4])
    x = mu1 + 0.7 * torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    y = mu2 + 1.3 * torch.randn(400_000, 3, generator=gen, dtype=torch.float64)
    k = ((x * y).sum(1) / 3 + 1) ** 3
    assert poly_expectation(mu1.double(), 0.7, mu2.double(), 1.3) == pytest.approx(float(k.mean()),
                                                                                   abs=4 * float(k.std()) / math.sqrt(len(k)))


@pytest.mark.parametrize("kernel", ["polynomial", "rbf"])
def test_unbiased_for_equal_laws_and_the_standard_error_is_calibrated(kernel):
    # 300 estimates with m = 60, n = 90 from the same law: their mean is 0 up to 4 standard errors of
    # that mean (a biased V-statistic would sit at ~ E k(x,x)/m > 0, many of those away), and the
    # jackknife standard error matches the spread across seeds (Efron-Stein: not below it; the
    # tolerance covers the sd's own sampling error at 300 draws, ~ 4% x 3)
    est, se = draws(300, 60, 90, 4, torch.zeros(4, dtype=torch.float64), 1.0, kernel)
    assert abs(float(est.mean())) < 4 * float(est.std()) / math.sqrt(len(est))
    assert 0.85 < float(se.mean()) / float(est.std()) < 1.6


def test_matches_the_closed_form_mmd2_of_two_gaussians():
    d = 5
    mu2 = torch.full((d,), 0.3, dtype=torch.float64)
    truth = poly_mmd2(torch.zeros(d, dtype=torch.float64), 1.0, mu2, 1.2)
    assert truth > 0.05  # a non-trivial difference
    est, se = draws(200, 80, 120, d, mu2, 1.2)
    # unbiased: the mean of 200 estimates within 4 standard errors of the mean of the closed form
    assert float(est.mean()) == pytest.approx(truth, abs=4 * float(est.std()) / math.sqrt(len(est)))
    # away from the null the jackknife standard error tracks the spread across seeds
    assert 0.8 < float(se.mean()) / float(est.std()) < 1.5


def test_kid_is_the_polynomial_kernel_and_bad_input_is_named():
    x, y = torch.randn(10, 3, 4), torch.randn(12, 3, 4) + 1
    assert kid(x, y)[:2] == mmd2_unbiased(x.flatten(1), y.flatten(1), "polynomial")[:2]
    with pytest.raises(ValueError, match="at least 3 samples"):
        kid(x[:2], y)
    with pytest.raises(ValueError, match="different feature sizes"):
        kid(x, y[:, :2])
    with pytest.raises(ValueError, match="unknown kernel"):
        mmd2_unbiased(x, y, "laplace")
    with pytest.raises(ValueError, match="NaN or inf"):
        kid(x, torch.full((5, 3, 4), float("nan")))


def test_paired_difference_se_matches_the_spread_of_differences():
    # x and x' = 0.95 x + 0.1 (the same units moved, like a pilot before and after steps) against one
    # reference: the jackknife error of the difference matches its spread across 200 seeds, and is far
    # below either estimate's own error (their common part cancels)
    diffs, ses, own = [], [], []
    for seed in range(200):
        gen = torch.Generator().manual_seed(seed)
        x = torch.randn(80, 3, generator=gen, dtype=torch.float64)
        ref = MMDReference(0.5 + torch.randn(120, 3, generator=gen, dtype=torch.float64), "rbf", 1.5)
        a, b = ref.estimate(0.95 * x + 0.1), ref.estimate(x)
        diffs.append(a.mmd2 - b.mmd2)
        ses.append(difference_se(a, b))
        own.append(a.se)
    spread = float(torch.tensor(diffs).std())
    assert 0.8 < float(torch.tensor(ses).mean()) / spread < 1.5
    assert float(torch.tensor(ses).mean()) < 0.5 * float(torch.tensor(own).mean())
    with pytest.raises(ValueError, match="same sizes"):
        difference_se(a, ref.estimate(x[:50]))
