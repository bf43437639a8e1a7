"""Reproducibility and plumbing: seeds, batch-size independence, labels, history, model state.

Bit-identity across batch sizes is tested with the batch-invariant ``RowMLP`` models of
conftest.py (nn.Linear itself is not bitwise batch-invariant on the CPU: its BLAS kernel
depends on the batch size).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dgflow

from conftest import RowMLP, TinyGenerator

BATCH_SIZES = (1, 7, 64)
N = 70  # not a multiple of 7 or 64: every batching has a ragged last batch


def assert_same(a, b, what=""):
    """Bitwise equality of tensors (NaN == NaN), or of plain values."""
    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        assert isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor), what
        torch.testing.assert_close(a, b, rtol=0, atol=0, equal_nan=True, msg=lambda m: f"{what}: {m}")
    else:
        assert a == b, f"{what}: {a!r} != {b!r}"


def assert_same_refine(r1, r2):
    for name in ("z", "x", "logits", "z_history", "x_history", "logit_history", "sample_ids"):
        a, b = getattr(r1, name), getattr(r2, name)
        if a is None or b is None:
            assert a is None and b is None, name
        else:
            assert_same(a, b, name)
    assert r1.steps == r2.steps
    assert r1.info == r2.info


REFINE_CASES = {
    "dgflow": dict(method="dgflow", steps=10),  # default gamma = 0.01: noisy
    "dgflow-data": dict(method="dgflow", steps=10, space="data"),
    "ddls": dict(method="ddls", eps=0.05, steps=10),
    "ddls-mala": dict(method="ddls", eps=0.5, steps=10, metropolis=True),
    "dot": dict(method="dot", steps=10),
    "dot-adam": dict(method="dot", steps=10, optimizer="adam"),
    "dot-data": dict(method="dot", steps=10, space="data"),
}


@pytest.mark.parametrize("case", sorted(REFINE_CASES))
def test_refine_bit_identical_across_batch_sizes(case, row_models):
    g, d = row_models
    kw = REFINE_CASES[case]
    runs = [dgflow.refine(g, d, n=N, latent_shape=(2,), seed=11, batch_size=bs, progress=False, **kw)
            for bs in BATCH_SIZES]
    first = runs[0]
    # not vacuous: the samples moved
    assert not torch.equal(first.x_history[0], first.x)
    if kw.get("metropolis"):
        assert 0 < first.info["acceptance_rate"] < 1  # some accepted and some rejected moves
    for other in runs[1:]:
        assert_same_refine(first, other)


@pytest.mark.parametrize("f", ["JS", "logD"])
def test_dgflow_sigmoid_scales_batch_independent_to_rounding(f, row_models):
    """JS / logD scale the drift by torch.sigmoid(+-d). On the CPU, torch.sigmoid's vectorised
    loop and its scalar tail differ in the last bit (measured: ~4% of float32 inputs), so a
    batch of 1 and a batch of 64 can differ by 1 ulp; the noise itself is identical. Require
    agreement to float32 rounding over 10 steps (rtol 1e-5, i.e. ~100 ulp)."""
    g, d = row_models
    runs = [dgflow.refine(g, d, n=N, latent_shape=(2,), seed=11, batch_size=bs, progress=False, method="dgflow",
                          f=f, steps=10, space=space)
            for bs in BATCH_SIZES for space in ("latent", "data")]
    for a, b in zip(runs[:2], runs[2:4]):
        torch.testing.assert_close(a.x, b.x, rtol=1e-5, atol=1e-6)
    for a, b in zip(runs[:2], runs[4:]):
        torch.testing.assert_close(a.x, b.x, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("case", ["dgflow", "ddls-mala", "dot"])
def test_refine_rows_depend_only_on_sample_id(case, row_models):
    """Refining a subset with its sample ids reproduces those rows of the full run."""
    g, d = row_models
    kw = REFINE_CASES[case]
    z = dgflow.NormalPrior((2,)).sample(N, seed=5)
    opts = dict(k_eff=2.0) if case == "dot" else {}  # (k_eff is estimated from all samples' streams)
    full = dgflow.refine(g, d, z=z, seed=3, progress=False, **kw, **opts)
    idx = torch.tensor([3, 17, 40, 69])
    part = dgflow.refine(g, d, z=z[idx], sample_ids=idx, seed=3, progress=False, **kw, **opts)
    for name in ("z", "x", "logits"):
        assert_same(getattr(full, name)[idx], getattr(part, name), name)
    assert_same(full.z_history[:, idx], part.z_history, "z_history")


@pytest.mark.parametrize("case", ["dgflow", "ddls", "ddls-mala"])
def test_different_seeds_give_different_noise(case, row_models):
    g, d = row_models
    kw = REFINE_CASES[case]
    z = dgflow.NormalPrior((2,)).sample(20, seed=5)
    a = dgflow.refine(g, d, z=z, seed=0, progress=False, **kw)
    b = dgflow.refine(g, d, z=z, seed=1, progress=False, **kw)
    again = dgflow.refine(g, d, z=z, seed=0, progress=False, **kw)
    assert_same_refine(a, again)
    # same start, different noise: (almost) every row ends elsewhere
    assert (a.z != b.z).any(1).float().mean() > 0.5


def test_different_seeds_give_different_starting_latents(row_models):
    g, d = row_models
    kw = dict(latent_shape=(2,), method="dot", steps=3, progress=False)
    a = dgflow.refine(g, d, n=20, seed=0, **kw)
    b = dgflow.refine(g, d, n=20, seed=1, **kw)
    assert (a.z_history[0] != b.z_history[0]).all()
    assert a.info["k_eff"] != b.info["k_eff"]  # k_eff pairs are seeded too


SELECT_CASES = {
    "drs": dict(method="drs", burn_in=200),
    "drs-exact": dict(method="drs", burn_in=200, percentile=None),
    "mhgan": dict(method="mhgan", calibration=None, chain_length=5),
    "mhgan-isotonic": dict(method="mhgan", calibration="isotonic", chain_length=5),
}


@pytest.mark.parametrize("case", sorted(SELECT_CASES))
def test_select_bit_identical_across_batch_sizes(case, row_models):
    g, d = row_models
    kw = SELECT_CASES[case]
    real = torch.randn(40, 2, generator=torch.Generator().manual_seed(0)) * 0.5
    if case == "mhgan-isotonic":
        kw = dict(kw, real=real)
    runs = [dgflow.select(g, d, 20, latent_shape=(2,), seed=4, batch_size=bs, progress=False, **kw)
            for bs in BATCH_SIZES]
    first = runs[0]
    assert first.x.shape == (20, 2) and torch.isfinite(first.z).all()
    for other in runs[1:]:
        for name in ("x", "z", "logits"):
            assert_same(getattr(first, name), getattr(other, name), name)
    other_seed = dgflow.select(g, d, 20, latent_shape=(2,), seed=5, progress=False, **kw)
    assert not torch.equal(first.x, other_seed.x)


def test_drs_acceptance_statistics_independent_of_batch_size(row_models):
    """DRS's n_proposals / acceptance_rate must not depend on batch_size.

    Proposal i's latent and uniform are keyed by i, so the index of the n-th accepted proposal
    is batch-size independent; the proposals "used" are those up to it. Checked for every
    n in 1..15, so both a final batch that holds more accepts than needed and one whose last
    accept is the n-th occur.
    """
    g, d = row_models
    for n in range(1, 16):
        runs = [dgflow.select(g, d, n, method="drs", latent_shape=(2,), burn_in=100, batch_size=bs,
                              progress=False) for bs in BATCH_SIZES]
        props = [r.n_proposals for r in runs]
        rates = [r.acceptance_rate for r in runs]
        assert len(set(props)) == 1 and len(set(rates)) == 1, \
            f"n={n}: n_proposals {props} / acceptance_rate {rates} for batch sizes {BATCH_SIZES}"


# ----------------------------------------------------------------------------------- user prior


class ShiftedGaussianPrior:
    """A user prior with only sample(n) and log_prob(z): N(1, 2^2 I) on R^3."""

    def sample(self, n):
        return 1.0 + 2.0 * torch.randn(n, 3)

    def log_prob(self, z):
        return (-((z - 1.0) ** 2) / 8 - math.log(2.0) - 0.5 * math.log(2 * math.pi)).sum(1)


def test_user_prior_starting_latents_are_batch_size_independent():
    g = RowMLP(3, 2, seed=0)
    d = RowMLP(2, 1, seed=1)
    prior = ShiftedGaussianPrior()
    kw = dict(prior=prior, method="ddls", eps=0.01, steps=3, progress=False, seed=2)
    runs = [dgflow.refine(g, d, n=12, batch_size=bs, **kw) for bs in BATCH_SIZES]
    z0 = runs[0].z_history[0]
    assert z0.shape == (12, 3)
    for other in runs[1:]:
        assert_same_refine(runs[0], other)
    # per-sample streams: a shorter run is a prefix, a subset of ids gives those rows
    assert_same(dgflow.refine(g, d, n=5, **kw).z_history[0], z0[:5], "prefix")
    ids = torch.tensor([2, 5, 11])
    assert_same(dgflow.refine(g, d, n=3, sample_ids=ids, **kw).z_history[0], z0[ids], "subset")
    # the draws come from the user's sampler: distinct rows, and a different seed changes them
    assert len(torch.unique(z0[:, 0])) == 12
    assert not torch.equal(dgflow.refine(g, d, n=12, **dict(kw, seed=3)).z_history[0], z0)


@pytest.mark.parametrize("prior, latent_shape", [("normal", (3,)), (ShiftedGaussianPrior(), (3,)),
                                                  (ShiftedGaussianPrior(), None)],
                         ids=["normal", "user-prior-with-shape", "user-prior-shape-inferred"])
def test_global_torch_rng_is_left_alone(prior, latent_shape):
    """dgflow draws from its own counter-based streams (and a forked RNG for user priors): a
    call must not advance the user's global torch RNG, or the user's later draws would depend
    on whether they refined."""
    g = RowMLP(3, 2, seed=0)
    d = RowMLP(2, 1, seed=1)
    torch.manual_seed(123)
    before = torch.random.get_rng_state()
    dgflow.refine(g, d, n=4, latent_shape=latent_shape, prior=prior, method="ddls", steps=2, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before), "refine advanced the global torch RNG"
    dgflow.select(g, d, 4, latent_shape=latent_shape, prior=prior, method="drs", burn_in=50, progress=False)
    assert torch.equal(torch.random.get_rng_state(), before), "select advanced the global torch RNG"


def test_user_prior_draws_follow_its_law():
    """N(1, 4) coordinates: 3 x 2000 draws, SE of the mean 2/sqrt(6000) = 0.026 (5 SE = 0.13);
    SE of the variance 4 sqrt(2/6000) = 0.073 (5 SE = 0.37)."""
    g = lambda z: z[:, :2]  # noqa: E731
    d = lambda x: -(x**2).sum(1)  # noqa: E731
    res = dgflow.refine(g, d, n=2000, prior=ShiftedGaussianPrior(), method="dgflow", steps=0, progress=False)
    z = res.z.double()
    assert abs(float(z.mean()) - 1.0) < 0.13
    assert abs(float(z.var()) - 4.0) < 0.37


# ------------------------------------------------------------------------------- conditional


OFFSETS = torch.tensor([[0.0, 0.0], [6.0, 0.0], [0.0, 6.0]])


def cond_generator(z, y):
    return z + OFFSETS[y]


def cond_discriminator(x, y):
    """Peaked at the class centre of label y (so a wrong label pulls x to the wrong class)."""
    return -((x - OFFSETS[y]) ** 2).sum(1)


@pytest.mark.parametrize("case", ["dgflow", "ddls", "dot", "dgflow-data", "dot-data"])
def test_labels_are_passed_through(case):
    kw = REFINE_CASES[case]
    labels = torch.arange(30) % 3
    z = dgflow.NormalPrior((2,)).sample(30, seed=1)
    res = dgflow.refine(cond_generator, cond_discriminator, z=z, labels=labels, batch_size=7, seed=2,
                        progress=False, **kw)
    # every sample stays with (near) its own class centre; centres are 6 apart
    dist = torch.cdist(res.x, OFFSETS)
    assert torch.equal(dist.argmin(1), labels)
    assert (dist[torch.arange(30), labels] < 3).all()
    assert torch.isfinite(res.x).all()
    # refining one class alone (same sample ids) gives the same rows: labels travel with samples
    for c in range(3):
        idx = torch.nonzero(labels == c).flatten()
        opts = dict(k_eff=res.info["k_eff"]) if kw["method"] == "dot" else {}
        alone = dgflow.refine(cond_generator, cond_discriminator, z=z[idx], labels=labels[idx], sample_ids=idx,
                              seed=2, progress=False, **kw, **opts)
        torch.testing.assert_close(alone.x, res.x[idx], rtol=0, atol=0)


@pytest.mark.parametrize("method", ["drs", "mhgan"])
def test_select_keeps_labels(method):
    labels = torch.tensor([2, 0, 1, 1, 2, 0, 0, 2, 1, 0])
    real = OFFSETS.repeat(20, 1) + 0.1 * torch.randn(60, 2, generator=torch.Generator().manual_seed(0))
    real_labels = torch.arange(3).repeat(20)
    opts = dict(burn_in=200) if method == "drs" else dict(chain_length=10, real=real, real_labels=real_labels)
    res = dgflow.select(cond_generator, cond_discriminator, 10, method=method, latent_shape=(2,), labels=labels,
                        progress=False, batch_size=4, **opts)
    assert torch.equal(res.labels, labels)
    assert torch.equal(torch.cdist(res.x, OFFSETS).argmin(1), labels)
    assert set(res.info["per_class"]) == {0, 1, 2}


# -------------------------------------------------------------------------------------- history


def test_save_interval_history(row_models):
    g, d = row_models
    res = dgflow.refine(g, d, n=9, latent_shape=(2,), method="dgflow", steps=25, save_interval=5,
                        batch_size=4, progress=False)
    assert res.steps == [0, 5, 10, 15, 20, 25]
    assert res.z_history.shape == (6, 9, 2)
    assert res.x_history.shape == (6, 9, 2)
    assert res.logit_history.shape == (6, 9)
    assert torch.equal(res.z_history[-1], res.z) and torch.equal(res.x_history[-1], res.x)
    assert torch.equal(res.logit_history[-1], res.logits)
    assert torch.equal(res.z_history[0], dgflow.NormalPrior((2,)).sample(9, seed=0))
    with torch.no_grad():
        assert torch.equal(res.x_history[0], g(res.z_history[0]))
        assert torch.equal(res.logit_history[2], d(res.x_history[2])[:, 0])

    # a step count that is not a multiple of save_interval keeps the last step too
    odd = dgflow.refine(g, d, n=4, latent_shape=(2,), steps=23, save_interval=5, progress=False)
    assert odd.steps == [0, 5, 10, 15, 20, 23] and odd.z_history.shape == (6, 4, 2)
    # the kept states are those of the longer run: the first 20 steps are the same steps
    assert torch.equal(odd.z_history[:5], dgflow.refine(g, d, n=4, latent_shape=(2,), steps=25,
                                                        save_interval=5, progress=False).z_history[:5])
    final_only = dgflow.refine(g, d, n=4, latent_shape=(2,), steps=7, save_interval=None, keep_samples=False,
                               progress=False)
    assert final_only.steps == [7] and final_only.z_history.shape == (1, 4, 2)
    assert final_only.x_history is None
    data = dgflow.refine(g, d, n=4, latent_shape=(2,), steps=10, space="data", progress=False)
    assert data.z_history is None and data.x_history.shape == (3, 4, 2)
    assert torch.equal(data.z, dgflow.NormalPrior((2,)).sample(4, seed=0))  # data space: z is the start
    with torch.no_grad():
        assert torch.equal(data.x_history[0], g(data.z))


# ------------------------------------------------------------------------------ model hygiene


class Recorder(nn.Module):
    """Identity that records the training flag it was called with."""

    def __init__(self):
        super().__init__()
        self.seen: list[bool] = []

    def forward(self, x):
        self.seen.append(self.training)
        return x


def _models_with_recorders():
    torch.manual_seed(0)
    g = nn.Sequential(Recorder(), nn.Linear(2, 8), nn.Dropout(0.5), nn.Tanh(), nn.Linear(8, 2))
    d = nn.Sequential(Recorder(), nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    g.train()
    d.train()
    g[2].eval()  # a submodule already in eval mode must stay so
    return g, d


@pytest.mark.parametrize("call", ["dgflow", "ddls", "dot", "drs", "mhgan"])
def test_eval_mode_during_and_restored_after(call):
    g, d = _models_with_recorders()
    flags = {name: m.training for name, m in list(g.named_modules()) + list(d.named_modules())}
    before = {k: v.clone() for k, v in list(g.state_dict().items()) + list(d.state_dict().items())}
    if call in ("drs", "mhgan"):
        opts = dict(burn_in=50) if call == "drs" else dict(calibration=None, chain_length=3)
        dgflow.select(g, d, 5, method=call, latent_shape=(2,), progress=False, **opts)
    else:
        dgflow.refine(g, d, n=5, latent_shape=(2,), method=call, steps=3, progress=False)
    assert g[0].seen and d[0].seen
    assert not any(g[0].seen) and not any(d[0].seen), "a model ran in training mode"
    assert {name: m.training for name, m in list(g.named_modules()) + list(d.named_modules())} == flags
    after = {k: v for k, v in list(g.state_dict().items()) + list(d.state_dict().items())}
    for k in before:
        assert torch.equal(before[k], after[k]), f"parameter {k} changed"
    for p in list(g.parameters()) + list(d.parameters()):
        assert p.grad is None, "refinement left a .grad on a model parameter"


def test_logits_b1_and_b_are_equivalent(row_models):
    g, d = row_models  # d returns [B, 1]
    d_flat = lambda x: d(x)[:, 0]  # noqa: E731
    for kw in (REFINE_CASES["dgflow"], REFINE_CASES["ddls-mala"], REFINE_CASES["dot"]):
        a = dgflow.refine(g, d, n=10, latent_shape=(2,), progress=False, **kw)
        b = dgflow.refine(g, d_flat, n=10, latent_shape=(2,), progress=False, **kw)
        assert a.logits.shape == (10,)
        assert_same_refine(a, b)
    a = dgflow.select(g, d, 10, method="drs", latent_shape=(2,), burn_in=100, progress=False)
    b = dgflow.select(g, d_flat, 10, method="drs", latent_shape=(2,), burn_in=100, progress=False)
    assert a.logits.shape == (10,)
    assert_same(a.x, b.x, "x")
    assert_same(a.logits, b.logits, "logits")


@pytest.mark.parametrize("method", ["dgflow", "ddls", "dot"])
def test_float64_logits_keep_latent_dtype(method, row_models):
    """A discriminator may return float64 logits for float32 samples (e.g. a closed-form or
    numpy-backed critic); the refined latents must stay float32 so the generator still runs
    (an nn.Linear generator raises a dtype-mismatch RuntimeError on float64 latents)."""
    g, d = TinyGenerator(), row_models[1]
    d64 = lambda x: d(x).double()  # noqa: E731
    res = dgflow.refine(g, d64, n=6, latent_shape=(2,), method=method, steps=3, progress=False)
    assert res.z.dtype == torch.float32 and res.x.dtype == torch.float32


# ------------------------------------------------------------------------- multi-dim latents


def test_multidimensional_latent_with_conv_generator():
    torch.manual_seed(0)
    g = nn.Sequential(nn.Conv2d(4, 3, kernel_size=1), nn.Tanh(), nn.Flatten(), nn.Linear(12, 2))
    d = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1))
    for kw in (dict(method="dgflow", steps=5), dict(method="ddls", steps=5, metropolis=True, eps=0.05),
               dict(method="dot", steps=5)):
        res = dgflow.refine(g, d, n=8, latent_shape=(4, 2, 2), progress=False, **kw)
        assert res.z.shape == (8, 4, 2, 2) and res.x.shape == (8, 2) and res.logits.shape == (8,)
        assert res.z_history.shape == (2, 8, 4, 2, 2)
        assert torch.isfinite(res.z).all()
        assert not torch.equal(res.z, res.z_history[0])
    # one noiseless KL step is exactly z + eta * grad_z d(g(z)) (s(d) = 1), per sample
    z = dgflow.NormalPrior((4, 2, 2)).sample(8, seed=1)
    res = dgflow.refine(g, d, z=z, method="dgflow", f="KL", eta=0.1, gamma=0.0, steps=1, progress=False)
    zz = z.clone().requires_grad_(True)
    (grad,) = torch.autograd.grad(d(g(zz)).sum(), zz)
    torch.testing.assert_close(res.z, z + 0.1 * grad)


def test_multidimensional_latent_bit_identical_across_batch_sizes():
    g = RowMLP(16, 2, seed=0)  # flattens [B, 4, 2, 2]
    d = RowMLP(2, 1, seed=1)
    for kw in (dict(method="dgflow", steps=4), dict(method="ddls", steps=4, metropolis=True, eps=0.1)):
        runs = [dgflow.refine(g, d, n=N, latent_shape=(4, 2, 2), batch_size=bs, progress=False, **kw)
                for bs in BATCH_SIZES]
        assert runs[0].z.shape == (N, 4, 2, 2)
        for other in runs[1:]:
            assert_same_refine(runs[0], other)
