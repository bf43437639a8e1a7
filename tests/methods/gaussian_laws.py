"""The statistical check of the methods' closed-form tests: are i.i.d. samples consistent with a Gaussian?

Tolerances are 5 standard errors (a correct implementation fails a given check with probability
~6e-7) and KS tests at alpha = 1e-3.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats


KS_ALPHA = 1e-3


def assert_gaussian(x: np.ndarray, mean: np.ndarray, cov: np.ndarray) -> None:
    """``x`` ([n, k], i.i.d.) is consistent with N(mean, cov).

    * sample mean: SE of coordinate j is sqrt(cov_jj / n); allow 5 SE.
    * sample covariance: for Gaussian data the SE of entry (i, j) is
      sqrt((cov_ii cov_jj + cov_ij^2) / n); allow 5 SE.
    * KS per coordinate against the exact marginal N(mean_j, cov_jj), alpha = 1e-3.
    * KS of the squared Mahalanobis distance against chi2(k) (tests the joint law), alpha = 1e-3.
    """
    n, k = x.shape
    se_mean = np.sqrt(np.diag(cov) / n)
    dev = (x.mean(0) - mean) / se_mean
    assert np.all(np.abs(dev) < 5), f"sample mean {x.mean(0)} vs exact {mean} ({dev} standard errors)"
    emp = np.cov(x.T)
    se_cov = np.sqrt((np.outer(np.diag(cov), np.diag(cov)) + cov**2) / n)
    dev_cov = (emp - cov) / se_cov
    assert np.all(np.abs(dev_cov) < 5), f"sample covariance {emp} vs exact {cov} ({dev_cov} standard errors)"
    for j in range(k):
        p = stats.kstest(x[:, j], "norm", args=(mean[j], math.sqrt(cov[j, j]))).pvalue
        assert p > KS_ALPHA, f"coordinate {j}: KS p-value {p:.2e} against N({mean[j]:.3f}, {cov[j, j]:.3f})"
    u = x - mean
    maha = np.einsum("ni,ij,nj->n", u, np.linalg.inv(cov), u)
    p = stats.kstest(maha, "chi2", args=(k,)).pvalue
    assert p > KS_ALPHA, f"squared Mahalanobis distances: KS p-value {p:.2e} against chi2({k})"
