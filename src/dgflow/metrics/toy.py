"""Metrics of the 2-D benchmarks.

* ``high_quality_fraction``: share of samples within ``k = 4`` standard deviations of the
  nearest mode (25 Gaussians).
* ``modes_covered``: modes holding at least ``min_count`` high-quality samples (default: a
  tenth of a fair share, ``0.1 n / n_modes``, at least 1).
* ``kde_log_likelihood``: mean log-density of ``points`` under a Gaussian KDE (fixed
  bandwidth) fitted to ``reference`` — with held-out real points under a KDE of the samples
  it measures coverage; with samples under a KDE of real data, quality. Higher is better.
* ``sliced_wasserstein``: mean 1-D Wasserstein-1 distance over random unit directions,
  a distance to real data that needs no mode structure. Lower is better.
* ``toy_scores``: all of them for a 2-D dataset's samples (what ``dgflow demo`` and 2-D runs report).
"""

from __future__ import annotations

import numpy as np
import torch
from scipy.stats import wasserstein_distance
from sklearn.neighbors import KernelDensity

from ..data.toy import MODES_25G, STD_25G

KDE_BANDWIDTH = 0.05  # of the KDE log-likelihoods toy_scores reports


def _np(x) -> np.ndarray:
    return x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)


def _nearest(x: np.ndarray, modes: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    dist = np.linalg.norm(x[:, None, :] - modes[None, :, :], axis=-1)
    return dist.argmin(1), dist.min(1)


def high_quality_fraction(x, modes, std: float, k: float = 4.0) -> float:
    """Fraction of samples whose distance to the nearest mode is at most ``k * std``."""
    _, dist = _nearest(_np(x), _np(modes))
    return float((dist <= k * std).mean())


def modes_covered(x, modes, std: float, k: float = 4.0, min_count: int | None = None) -> int:
    """Number of modes with at least ``min_count`` high-quality samples."""
    x, modes = _np(x), _np(modes)
    nearest, dist = _nearest(x, modes)
    if min_count is None:
        min_count = max(1, int(np.ceil(0.1 * len(x) / len(modes))))
    counts = np.bincount(nearest[dist <= k * std], minlength=len(modes))
    return int((counts >= min_count).sum())


def kde_log_likelihood(points, reference, bandwidth: float = 0.05) -> float:
    """Mean log-density of ``points`` under a Gaussian KDE of ``reference`` with the given bandwidth."""
    kde = KernelDensity(kernel="gaussian", bandwidth=bandwidth).fit(_np(reference))
    return float(kde.score_samples(_np(points)).mean())


def sliced_wasserstein(a, b, n_projections: int = 256, seed: int = 0) -> float:
    """Sliced Wasserstein-1 distance between two point clouds (mean over random directions)."""
    a, b = _np(a).reshape(len(a), -1), _np(b).reshape(len(b), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"point clouds have different dimensions: {a.shape[1]} vs {b.shape[1]}")
    dirs = np.random.default_rng(seed).standard_normal((n_projections, a.shape[1]))
    dirs /= np.linalg.norm(dirs, axis=1, keepdims=True)
    pa, pb = a @ dirs.T, b @ dirs.T
    return float(np.mean([wasserstein_distance(pa[:, i], pb[:, i]) for i in range(n_projections)]))


def toy_scores(dataset: str, x, real) -> dict[str, float | int | None]:
    """All 2-D metrics of samples ``x`` against held-out ``real`` points (the mode metrics only for 25 Gaussians)."""
    out: dict[str, float | int | None] = {"high_quality_pct": None, "modes": None}
    if dataset == "25gaussians":
        out["high_quality_pct"] = 100 * high_quality_fraction(x, MODES_25G, STD_25G)
        out["modes"] = modes_covered(x, MODES_25G, STD_25G)
    out["kde_real_under_gen"] = kde_log_likelihood(real, x, KDE_BANDWIDTH)
    out["kde_gen_under_real"] = kde_log_likelihood(x, real, KDE_BANDWIDTH)
    out["swd"] = sliced_wasserstein(x, real)
    return out
