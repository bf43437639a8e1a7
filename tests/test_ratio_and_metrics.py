"""DensityRatio sums and offsets, self-normalisation, the 2-D metrics, checkpoints."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

import dgflow
from dgflow.metrics import high_quality_fraction, kde_log_likelihood, modes_covered, sliced_wasserstein
from dgflow.data.toy import MODES_25G, STD_25G, sample_toy
from dgflow.zoo import build_model, load_checkpoint, save_checkpoint


def test_density_ratio_sums_terms_and_offsets():
    d1 = lambda x: x[:, 0]  # noqa: E731
    d2 = lambda x: 2 * x[:, 1:2]  # noqa: E731  ([B, 1] is accepted)
    x = torch.randn(5, 2)
    r = dgflow.DensityRatio(d1, d2, offset=0.5)
    torch.testing.assert_close(r(x), x[:, 0] + 2 * x[:, 1] + 0.5)
    nested = dgflow.DensityRatio(r, d1, offset=1.0)  # a nested ratio keeps its offset
    torch.testing.assert_close(nested(x), 2 * x[:, 0] + 2 * x[:, 1] + 1.5)


def test_self_normalized_makes_mean_exp_one_and_keeps_gradients():
    # p_g = N(0, 1), d(x) = a x + c: E[exp d] = exp(c + a^2 / 2), so the shift is -(c + a^2/2)
    a, c = 0.7, -8.0
    critic = lambda x: a * x[:, 0] + c  # noqa: E731
    x = torch.from_numpy(np.random.default_rng(0).standard_normal((200_000, 1)))
    r = dgflow.self_normalized(critic, critic(x))
    # Monte Carlo error of log E[exp d]: sd(exp d)/E[exp d]/sqrt(n) = sqrt(exp(a^2) - 1)/sqrt(n) ~ 0.0018
    assert abs(r.offset - (-(c + a * a / 2))) < 5 * math.sqrt(math.exp(a * a) - 1) / math.sqrt(len(x))
    xs = torch.linspace(-2, 2, 5)[:, None]
    torch.testing.assert_close(r(xs) - critic(xs), torch.full((5,), r.offset, dtype=xs.dtype))


def test_high_quality_and_modes_on_constructed_points():
    near = MODES_25G[:10] + 3.9 * STD_25G * torch.tensor([1.0, 0.0])  # inside 4 std
    far = MODES_25G[:5] + 4.1 * STD_25G * torch.tensor([0.0, 1.0])  # outside
    x = torch.cat([near, far])
    assert high_quality_fraction(x, MODES_25G, STD_25G) == pytest.approx(10 / 15)
    assert modes_covered(x, MODES_25G, STD_25G, min_count=1) == 10
    assert modes_covered(x, MODES_25G, STD_25G, min_count=2) == 0
    real = sample_toy("25gaussians", 5000, seed=1)
    assert high_quality_fraction(real, MODES_25G, STD_25G) > 0.99  # 4 std in 2-D keeps 1 - exp(-8) of the mass


def test_sliced_wasserstein_matches_a_shift():
    a = torch.randn(4000, 2, generator=torch.Generator().manual_seed(0))
    assert sliced_wasserstein(a, a) == 0.0
    # shifting by v moves each projection by <u, v>; E|<u, v>| over unit u in 2-D is 2|v|/pi
    v = torch.tensor([0.3, 0.0])
    assert sliced_wasserstein(a, a + v, n_projections=2000) == pytest.approx(2 * 0.3 / math.pi, rel=0.03)


def test_kde_prefers_the_matching_distribution():
    real = sample_toy("swissroll", 1000, seed=1)
    same = sample_toy("swissroll", 1000, seed=2)
    other = sample_toy("25gaussians", 1000, seed=2)
    assert kde_log_likelihood(real, same) > kde_log_likelihood(real, other) + 1.0


def test_checkpoint_round_trip_and_architecture_mismatch(tmp_path):
    g = build_model("mlp_generator", z_dim=2)
    path = tmp_path / "ck.pt"
    save_checkpoint(path, {"generator": ("mlp_generator", {"z_dim": 2}, g)}, {"note": "x"})
    models, meta = load_checkpoint(path)
    assert meta == {"note": "x"}
    for p, q in zip(g.parameters(), models["generator"].parameters()):
        assert torch.equal(p, q)
    payload = torch.load(path, weights_only=False)
    payload["models"]["generator"]["config"] = {"z_dim": 3}  # recorded architecture disagrees with weights
    torch.save(payload, path)
    with pytest.raises(ValueError, match="does not match the MLPGenerator architecture"):
        load_checkpoint(path)
    with pytest.raises(FileNotFoundError, match="does not exist"):
        load_checkpoint(tmp_path / "missing.pt")
    torch.save({"weight": torch.zeros(1)}, path)
    with pytest.raises(ValueError, match="not a dgflow checkpoint"):
        load_checkpoint(path)
