"""Unbiased MMD^2 between two samples, with its standard error (KID with the polynomial kernel).

For samples ``x_1..x_m ~ P`` and ``y_1..y_n ~ Q`` and a kernel ``k`` (Gretton et al. 2012, eq. 3),

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
              - 2/(mn) sum_{i,j} k(x_i, y_j),

an unbiased estimate of ``MMD^2(P, Q) = E k(X, X') + E k(Y, Y') - 2 E k(X, Y)`` (0 iff ``P = Q`` for a
characteristic kernel; it can be negative). Kernels:

    "polynomial"  k(x, y) = (x.y / d + 1)^3     (d: the feature dimension; the Kernel Inception
                                                  Distance, Binkowski et al. 2018, on Inception features)
    "rbf"         k(x, y) = exp(-|x - y|^2 / (2 s^2))   (s: ``bandwidth``; by default the median
                                                  pairwise distance of the pooled samples, a data-dependent
                                                  choice that makes the estimate unbiased only given s;
                                                  several bandwidths: the sum of their kernels, sensitive
                                                  at every one of those scales)

The standard error is the two-sample delete-one jackknife (Arvesen 1969),

    se^2 = (m-1)/m sum_i (T_{-x_i} - mean_i T_{-x_i})^2 + (n-1)/n sum_j (T_{-y_j} - mean_j T_{-y_j})^2,

with ``T_{-x_i}`` the estimate without ``x_i``, computed from the kernel matrices' row sums in O(m n).
By the Efron-Stein inequality its expectation is at least the true variance (conservative), also when
``P = Q``, where the first-order (delta-method) variance is 0 and useless. :func:`difference_se` is the
same jackknife for the difference of two estimates on paired samples.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import NamedTuple

import torch
from torch import Tensor

KERNELS = ("polynomial", "rbf")


class MMDEstimate(NamedTuple):
    """An unbiased MMD^2 estimate, its jackknife standard error and (for paired errors) the delete-one estimates."""

    mmd2: float  # unbiased MMD^2 estimate
    se: float  # its jackknife standard error
    jackknife: tuple[Tensor, Tensor] | None = None  # the delete-one estimates (without x_i; without y_j)


def difference_se(a: MMDEstimate, b: MMDEstimate) -> float:
    """Jackknife standard error of ``a.mmd2 - b.mmd2`` for two estimates on *paired* samples: the same reference
    ``y`` and row ``i`` of both ``x`` samples from the same unit (e.g. one pilot sample before and after refinement
    steps). Deleting ``x_i`` (or ``y_j``) from both at once keeps their correlation, so the error of a difference can
    be far below either estimate's own error."""
    if a.jackknife is None or b.jackknife is None or any(u.shape != v.shape for u, v in zip(a.jackknife, b.jackknife)):
        raise ValueError("difference_se needs two estimates from MMDReference.estimate on samples of the same sizes")
    var = 0.0
    for u, v in zip(a.jackknife, b.jackknife):
        t = u - v
        var += float((len(t) - 1) / len(t) * (t - t.mean()).pow(2).sum())
    return var**0.5


Bandwidth = float | Sequence[float]


def kernel_matrix(a: Tensor, b: Tensor, kernel: str = "polynomial", bandwidth: Bandwidth | None = None) -> Tensor:
    """``k(a_i, b_j)`` for rows of ``a`` [m, d] and ``b`` [n, d] (float64); ``rbf`` with several bandwidths: the
    sum of their Gaussian kernels."""
    if kernel == "polynomial":
        return (a @ b.T / a.shape[1] + 1) ** 3
    if kernel == "rbf":
        if bandwidth is None:
            raise ValueError("the rbf kernel needs a bandwidth (mmd2_unbiased picks the median distance)")
        d2 = torch.cdist(a, b).pow(2)
        scales = bandwidth if isinstance(bandwidth, Sequence) else (bandwidth,)
        return sum((torch.exp(-d2 / (2 * s**2)) for s in scales), torch.zeros_like(d2))
    raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")


def median_distance(x: Tensor, y: Tensor, max_points: int = 1000) -> float:
    """Median pairwise Euclidean distance of the pooled samples (the first ``max_points`` of each)."""
    z = torch.cat([x[:max_points], y[:max_points]]).double()
    d = torch.cdist(z, z)
    return float(d[torch.triu(torch.ones_like(d, dtype=torch.bool), 1)].median())


def _prepare(x: Tensor) -> Tensor:
    x = x.detach().flatten(1).double()
    if not torch.isfinite(x).all():
        raise ValueError("the samples contain NaN or inf")
    return x


class MMDReference:
    """A fixed sample ``y`` (e.g. held-out real features) against which :meth:`estimate` scores many samples ``x``:
    its kernel matrix is computed once. ``kernel="rbf"`` without ``bandwidth``: the median distance within ``y``."""

    def __init__(self, y: Tensor, kernel: str = "polynomial", bandwidth: Bandwidth | None = None):
        self.y = _prepare(y)
        if len(self.y) < 3:
            raise ValueError(f"the unbiased MMD^2 and its standard error need at least 3 samples on each side, "
                             f"got {len(self.y)} reference samples")
        if kernel not in KERNELS:
            raise ValueError(f"unknown kernel {kernel!r}; choose one of {KERNELS}")
        if kernel == "rbf" and bandwidth is None:
            bandwidth = median_distance(self.y, self.y[:0]) or 1.0
        self.kernel, self.bandwidth = kernel, bandwidth
        kyy = kernel_matrix(self.y, self.y, kernel, bandwidth)
        kyy.fill_diagonal_(0)
        self.ry = kyy.sum(1)  # off-diagonal row sums

    def estimate(self, x: Tensor) -> MMDEstimate:
        """Unbiased ``MMD^2`` between ``x`` and the reference, and its jackknife standard error."""
        x = _prepare(x)
        m, n = len(x), len(self.y)
        if m < 3:
            raise ValueError(f"the unbiased MMD^2 and its standard error need at least 3 samples on each side, got {m}")
        if x.shape[1] != self.y.shape[1]:
            raise ValueError(f"the two samples have different feature sizes: {x.shape[1]} and {self.y.shape[1]}")
        kxx = kernel_matrix(x, x, self.kernel, self.bandwidth)
        kxx.fill_diagonal_(0)
        kxy = kernel_matrix(x, self.y, self.kernel, self.bandwidth)
        rx, ry = kxx.sum(1), self.ry
        cx, cy = kxy.sum(1), kxy.sum(0)
        sxx, syy, sxy = rx.sum(), ry.sum(), cx.sum()
        mmd2 = sxx / (m * (m - 1)) + syy / (n * (n - 1)) - 2 * sxy / (m * n)
        # delete-one estimates: without x_i, then without y_j
        t_x = (sxx - 2 * rx) / ((m - 1) * (m - 2)) + syy / (n * (n - 1)) - 2 * (sxy - cx) / ((m - 1) * n)
        t_y = sxx / (m * (m - 1)) + (syy - 2 * ry) / ((n - 1) * (n - 2)) - 2 * (sxy - cy) / (m * (n - 1))
        var = (m - 1) / m * (t_x - t_x.mean()).pow(2).sum() + (n - 1) / n * (t_y - t_y.mean()).pow(2).sum()
        return MMDEstimate(float(mmd2), float(var.sqrt()), (t_x, t_y))


def mmd2_unbiased(x: Tensor, y: Tensor, kernel: str = "polynomial", bandwidth: Bandwidth | None = None) -> MMDEstimate:
    """Unbiased ``MMD^2`` between samples ``x`` [m, ...] and ``y`` [n, ...] (flattened per sample) and its
    jackknife standard error; see the module docstring. Needs ``m, n >= 3``. ``kernel="rbf"`` without
    ``bandwidth``: the median pairwise distance of the pooled samples."""
    if kernel == "rbf" and bandwidth is None:
        bandwidth = median_distance(_prepare(x), _prepare(y)) or 1.0
    return MMDReference(y, kernel, bandwidth).estimate(x)


def kid(x: Tensor, y: Tensor) -> MMDEstimate:
    """Kernel Inception Distance: :func:`mmd2_unbiased` with the cubic polynomial kernel, on features
    (e.g. :class:`dgflow.metrics.InceptionFeatures` outputs)."""
    return mmd2_unbiased(x, y, "polynomial")
