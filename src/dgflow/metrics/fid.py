"""Fréchet Inception Distance (FID) between Gaussians fitted to features.

With ``mu_i``, ``S_i`` the mean and covariance of the features of two image sets,

    d^2 = |mu_1 - mu_2|^2 + Tr(S_1 + S_2 - 2 (S_1 S_2)^{1/2})

(Heusel et al., 2017). ``Tr (S_1 S_2)^{1/2}`` is the sum of the square roots of the eigenvalues
of the symmetric matrix ``S_1^{1/2} S_2 S_1^{1/2}`` (same spectrum as ``S_1 S_2``): exact also for
singular covariances, with no ``eps`` regulariser and no complex round-off to drop. Statistics
are stored as npz with keys ``mu`` [F] and ``sigma`` [F, F], the format of EDM and
Discriminator Guidance reference files. Features come from ``InceptionFeatures`` (FID) or
``ClassifierFeatures`` (a "classifier FID").
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import torch

from ..io import write_with


def _np64(x) -> np.ndarray:
    x = x.detach().cpu().numpy() if isinstance(x, torch.Tensor) else np.asarray(x)
    return x.astype(np.float64)


def compute_stats(features) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) of features ``[N, F]``: the mean and the unbiased covariance (``np.cov``, rows = samples)."""
    f = _np64(features)
    if f.ndim != 2 or len(f) < 2:
        raise ValueError(f"features must be [N, F] with N >= 2 samples, got shape {f.shape}")
    return f.mean(0), np.cov(f, rowvar=False)


def _check_stats(mu, sigma, where: str) -> tuple[np.ndarray, np.ndarray]:
    mu, sigma = _np64(mu), _np64(sigma)
    if mu.ndim != 1 or sigma.shape != (len(mu), len(mu)):
        raise ValueError(f"{where}: mu must be [F] and sigma [F, F], got {mu.shape} and {sigma.shape}")
    return mu, sigma


def save_stats(path: str | os.PathLike, mu, sigma) -> None:
    """Write ``mu`` and ``sigma`` to an npz file (atomically), readable by EDM / DG tools."""
    mu, sigma = _check_stats(mu, sigma, str(path))

    def _write(tmp: str) -> None:
        with open(tmp, "wb") as fh:
            np.savez(fh, mu=mu, sigma=sigma)

    write_with(path, _write)


def load_stats(path: str | os.PathLike) -> tuple[np.ndarray, np.ndarray]:
    """(mu, sigma) from an npz file with keys ``mu`` and ``sigma``."""
    path = Path(path).expanduser()
    if not path.is_file():
        raise FileNotFoundError(f"no FID statistics file at {path}; write one with dgflow.metrics.save_stats "
                                "or pass a reference npz (keys 'mu' and 'sigma') from EDM / DG")
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = sorted(data.files)
            stats = {k: data[k] for k in ("mu", "sigma") if k in keys}
    except (OSError, EOFError, ValueError) as err:
        raise ValueError(f"{path} is not a readable npz file ({err})") from err
    if len(stats) != 2:
        raise ValueError(f"{path} has keys {keys} but FID statistics need 'mu' and 'sigma' "
                         "(save them with dgflow.metrics.save_stats)")
    return _check_stats(stats["mu"], stats["sigma"], str(path))


def fid_from_stats(mu1, sigma1, mu2, sigma2) -> float:
    """|mu1 - mu2|^2 + Tr(sigma1 + sigma2 - 2 sqrtm(sigma1 sigma2))."""
    mu1, sigma1 = _check_stats(mu1, sigma1, "first statistics")
    mu2, sigma2 = _check_stats(mu2, sigma2, "second statistics")
    if mu1.shape != mu2.shape:
        raise ValueError(f"feature dimensions differ: {mu1.shape[0]} vs {mu2.shape[0]}; "
                         "compute both statistics with the same feature extractor")
    # Tr sqrt(S1 S2) = sum_i sqrt(lambda_i), lambda_i the eigenvalues of the symmetric PSD matrix
    # sqrt(S1) S2 sqrt(S1), which has the same spectrum as S1 S2: exact, also for singular
    # covariances, and much faster than a general matrix square root.
    w, v = np.linalg.eigh(sigma1)
    root1 = (v * np.sqrt(np.clip(w, 0, None))) @ v.T
    lam = np.linalg.eigvalsh(root1 @ sigma2 @ root1)
    if lam.min() < -1e-6 * max(1.0, lam.max()):
        raise ValueError(f"sqrt(sigma1) sigma2 sqrt(sigma1) has a negative eigenvalue {lam.min():.3g}; "
                         "are both sigmas valid covariances?")
    trace_covmean = float(np.sqrt(np.clip(lam, 0, None)).sum())
    diff = mu1 - mu2
    return float(diff @ diff + np.trace(sigma1) + np.trace(sigma2) - 2 * trace_covmean)


def fid_from_features(features1, features2) -> float:
    """FID between two feature sets ``[N, F]`` (statistics by ``compute_stats``)."""
    return fid_from_stats(*compute_stats(features1), *compute_stats(features2))
