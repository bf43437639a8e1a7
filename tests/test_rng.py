"""The counter-based per-sample random streams (dgflow.SampleNoise).

Fixed seeds; KS / chi-square tests at alpha = 1e-3; correlation bounds of 5 / sqrt(n): for
independent streams the sample correlation of n pairs is ~N(0, 1/n), so one pair exceeds
5 standard errors with probability 5.7e-7, and a family of at most 1,225 pairs with
probability below 7e-4 (union bound).
"""

from __future__ import annotations

import contextlib
import math
import signal

import numpy as np
import pytest
import torch
from scipy import stats

import dgflow

ALPHA = 1e-3


def test_normal_draws_are_standard_normal():
    """200,000 draws (2,000 samples x 100 elements)."""
    xi = dgflow.SampleNoise(7, torch.arange(2000)).normal((100,), step=3, stream="dgflow", dtype=torch.float64)
    assert xi.shape == (2000, 100) and xi.dtype == torch.float64
    x = xi.numpy().ravel()
    assert stats.kstest(x, "norm").pvalue > ALPHA
    # mean: SE 1/sqrt(2e5) = 0.0022 (5 SE = 0.011); variance: SE sqrt(2/2e5) = 0.0032 (5 SE = 0.016)
    assert abs(x.mean()) < 0.011
    assert abs(x.var() - 1) < 0.016
    # tails: P(|xi| > 3) = 0.0027, count ~ Binomial(2e5, 0.0027): mean 540, SD 23 (5 SD = 116)
    assert abs(int((np.abs(x) > 3).sum()) - 2e5 * 2 * stats.norm.sf(3)) < 116


def test_normal_draws_float32_and_shapes():
    noise = dgflow.SampleNoise(0, [4, 9, 1])
    xi = noise.normal((2, 3, 5))
    assert xi.shape == (3, 2, 3, 5) and xi.dtype == torch.float32
    assert noise.normal(()).shape == (3,)
    # float32 draws are the float64 draws computed in float32: the 32-bit u1 rounds to 24 bits (error
    # delta <= 2**-25), which moves r = sqrt(-2 ln u1) by at most sqrt(2 delta) = 2.4e-4 (at r ~ 0) and
    # by ~delta / (u1 r) elsewhere; log/cos/sin in float32 add a relative ~1e-6
    torch.testing.assert_close(xi.double(), noise.normal((2, 3, 5), dtype=torch.float64), rtol=1e-5, atol=2.5e-4)


def test_uniform_draws_are_uniform():
    u = dgflow.SampleNoise(7, torch.arange(2000)).uniform((100,), step=1, stream="accept", dtype=torch.float64)
    x = u.numpy().ravel()
    assert 0 < x.min() and x.max() < 1  # open interval
    assert stats.kstest(x, "uniform").pvalue > ALPHA
    # mean: SE sqrt(1/12 / 2e5) = 0.00065 (5 SE = 0.0032)
    assert abs(x.mean() - 0.5) < 0.0032


def test_randint_is_uniform_over_its_range():
    k = dgflow.SampleNoise(3, torch.arange(20000)).randint(7, stream="labels")
    assert k.dtype == torch.int64 and int(k.min()) >= 0 and int(k.max()) <= 6
    counts = np.bincount(k.numpy(), minlength=7)
    assert stats.chisquare(counts).pvalue > ALPHA


def _max_offdiag_corr(rows: np.ndarray) -> float:
    c = np.corrcoef(rows)
    np.fill_diagonal(c, 0.0)
    return float(np.abs(c).max())


def test_rows_for_different_sample_ids_are_uncorrelated():
    """50 samples (consecutive ids, plus ids near 2^31 and 2^32), 4,000 draws each: 1,225 pairs,
    bound 5/sqrt(4000) = 0.079."""
    ids = torch.cat([torch.arange(45), torch.tensor([2**31 - 1, 2**31, 2**32 - 3, 2**32 - 2, 2**32 - 1])])
    rows = dgflow.SampleNoise(0, ids).normal((4000,), dtype=torch.float64).numpy()
    assert _max_offdiag_corr(rows) < 5 / math.sqrt(4000)


def test_steps_are_uncorrelated():
    """The draw of each of 4,000 samples at steps 0..29: 435 pairs of steps, bound 0.079."""
    noise = dgflow.SampleNoise(1, torch.arange(4000))
    rows = np.stack([noise.normal(step=k, stream="ddls", dtype=torch.float64).numpy() for k in range(30)])
    assert _max_offdiag_corr(rows) < 5 / math.sqrt(4000)


def test_streams_and_seeds_are_uncorrelated():
    """Stream names used by the library, and seeds 0..9: 4,000 samples each, bound 0.079."""
    noise = dgflow.SampleNoise(2, torch.arange(4000))
    streams = ["normal", "prior", "dgflow", "ddls", "dot-pairs-1", "dot-pairs-2", "drs", "mhgan",
               "class0-drs", "class1-drs"]
    rows = np.stack([noise.normal(stream=s, dtype=torch.float64).numpy() for s in streams])
    assert _max_offdiag_corr(rows) < 5 / math.sqrt(4000)
    rows = np.stack([dgflow.SampleNoise(seed, torch.arange(4000)).normal(dtype=torch.float64).numpy()
                     for seed in range(10)])
    assert _max_offdiag_corr(rows) < 5 / math.sqrt(4000)
    # uniforms of an accept stream against the normals of the move stream (DDLS uses both)
    u = noise.uniform(step=0, stream="ddls-accept", dtype=torch.float64).numpy()
    xi = noise.normal(step=0, stream="ddls", dtype=torch.float64).numpy()
    assert abs(stats.spearmanr(u, np.abs(xi)).statistic) < 5 / math.sqrt(4000)


def test_elements_within_a_row_are_uncorrelated():
    """Element j of the 4,000 samples' [50]-shaped draws vs element k: 1,225 pairs, bound 0.079;
    and lag-1 autocorrelation along one long row (n = 100,000: bound 5/sqrt(n) = 0.016)."""
    xi = dgflow.SampleNoise(4, torch.arange(4000)).normal((50,), dtype=torch.float64).numpy()
    assert _max_offdiag_corr(xi.T) < 5 / math.sqrt(4000)
    row = dgflow.SampleNoise(4, [12345]).normal((100_000,), dtype=torch.float64).numpy()[0]
    assert abs(np.corrcoef(row[:-1], row[1:])[0, 1]) < 5 / math.sqrt(100_000)


@pytest.mark.parametrize("index", [
    torch.tensor([3, 17, 2, 40]),
    slice(5, 20),
    slice(None, None, 3),
    torch.arange(50) % 4 == 1,  # boolean mask
    [0, 49, 7],
], ids=["tensor", "slice", "strided", "mask", "list"])
def test_subset_gives_the_same_draws(index):
    ids = torch.arange(100, 150)
    full = dgflow.SampleNoise(9, ids)
    sub = full[index]
    rows = torch.arange(50)[index]
    assert torch.equal(sub.sample_ids, ids[rows])
    for step, stream in [(0, "normal"), (4, "dgflow"), (17, "prior")]:
        assert torch.equal(sub.normal((3, 2), step=step, stream=stream), full.normal((3, 2), step=step, stream=stream)[rows])
        assert torch.equal(sub.uniform((5,), step=step, stream=stream), full.uniform((5,), step=step, stream=stream)[rows])
        assert torch.equal(sub.randint(11, step=step, stream=stream), full.randint(11, step=step, stream=stream)[rows])
    # a fresh object with the same ids (any order) gives the same rows as well
    again = dgflow.SampleNoise(9, ids[rows].flip(0))
    assert torch.equal(again.normal((3, 2)), full.normal((3, 2))[rows].flip(0))


def test_draws_are_deterministic_and_keyed_by_everything():
    a = dgflow.SampleNoise(5, torch.arange(10))
    base = a.normal((8,), step=2, stream="s")
    assert torch.equal(base, dgflow.SampleNoise(5, torch.arange(10)).normal((8,), step=2, stream="s"))
    for other in (a.normal((8,), step=3, stream="s"), a.normal((8,), step=2, stream="t"),
                  dgflow.SampleNoise(6, torch.arange(10)).normal((8,), step=2, stream="s"),
                  dgflow.SampleNoise(5, torch.arange(1, 11)).normal((8,), step=2, stream="s")):
        assert (other != base).all()


def test_large_seeds_are_distinct():
    """Seeds wider than 32 bits are folded in, not truncated."""
    draws = [dgflow.SampleNoise(s, torch.arange(20)).normal() for s in (0, 2**32, 2**40, 2**64 + 1, 1)]
    for i in range(len(draws)):
        for j in range(i):
            assert not torch.equal(draws[i], draws[j])


@contextlib.contextmanager
def time_limit(seconds: float):
    """Raise TimeoutError in the main thread if the block runs longer than ``seconds``."""

    def handler(signum, frame):
        raise TimeoutError(f"still running after {seconds} s")

    old = signal.signal(signal.SIGALRM, handler)
    signal.setitimer(signal.ITIMER_REAL, seconds)
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, old)


def test_negative_seed_terminates():
    seed = -1
    """A negative seed must either work (give valid, deterministic draws) or be rejected with a
    ValueError - not hang. (A draw takes milliseconds; 2 s is a generous limit.)"""
    try:
        with time_limit(2.0):
            try:
                a = dgflow.SampleNoise(seed, torch.arange(4)).normal((3,))
            except ValueError as err:
                assert "seed" in str(err)
                return
            b = dgflow.SampleNoise(seed, torch.arange(4)).normal((3,))
    except TimeoutError:
        pytest.fail(f"SampleNoise(seed={seed}) did not return within 2 s (infinite loop)")
    assert torch.equal(a, b) and torch.isfinite(a).all()
    assert not torch.equal(a, dgflow.SampleNoise(0, torch.arange(4)).normal((3,)))


# ------------------------------------------------------------------------------- the generator itself


def _reference_hashes(seed: int, sample_id: int, step: int, stream: str, kind: int, pairs: int) -> list[int]:
    """The documented formula in plain Python integers (mod 2**64), independent of torch's int64."""
    from dgflow.rng import _GOLDEN, hash64_int, mix64_int, stream_id

    m = 2**64
    sample_key = mix64_int((hash64_int(seed) + sample_id * _GOLDEN) % m)
    counter = mix64_int((hash64_int(stream_id(stream), kind) + step * _GOLDEN) % m)
    return [mix64_int((sample_key + counter + (j + 1) * _GOLDEN) % m) for j in range(pairs)]


def test_draws_follow_the_documented_formula_bit_for_bit():
    """The vectorised int64 arithmetic (wrapping +/*, masked shifts) equals SplitMix64 on Python integers;
    the uniforms are (k + 1/2) / 2**32 of the high then low 32 bits; the normals Box-Muller of them."""
    ids = [0, 1, 7, 2**31, 2**32 - 1]
    noise = dgflow.SampleNoise(2**40 + 3, ids)
    u = noise.uniform((6,), step=9, stream="ddls-accept", dtype=torch.float64)
    xi = noise.normal((5,), step=4, stream="dgflow", dtype=torch.float64)
    for b, sid in enumerate(ids):
        h = _reference_hashes(2**40 + 3, sid, 9, "ddls-accept", 1, 3)
        bits = [v >> 32 for v in h] + [v & 0xFFFFFFFF for v in h]
        assert u[b].tolist() == [(k + 0.5) / 2**32 for k in bits]
        h = _reference_hashes(2**40 + 3, sid, 4, "dgflow", 0, 3)
        r = [math.sqrt(-2 * math.log(((v >> 32) + 0.5) / 2**32)) for v in h]
        a = [2 * math.pi * (v & 0xFFFFFFFF) / 2**32 for v in h]
        expect = [ri * math.cos(ai) for ri, ai in zip(r, a)] + [ri * math.sin(ai) for ri, ai in zip(r, a)][:2]
        np.testing.assert_allclose(xi[b].numpy(), expect, rtol=1e-12, atol=1e-12)


def test_float32_normals_are_standard_normal():
    """The default (float32) path: 200,000 draws, KS at alpha = 1e-3, and the largest |xi| within the
    documented bound sqrt(-2 ln 2**-33) = 6.76."""
    x = dgflow.SampleNoise(11, torch.arange(2000)).normal((100,), step=5, stream="dgflow").numpy().ravel()
    assert stats.kstest(x, "norm").pvalue > ALPHA
    assert abs(x.mean()) < 0.011 and abs(x.var() - 1) < 0.016  # 5 SE, as above
    assert np.abs(x).max() <= math.sqrt(-2 * math.log(2.0**-33)) + 1e-5


def test_odd_sizes_and_pairs_are_independent():
    """An odd element count drops the last sin; the cos half and the sin half of one hash are
    uncorrelated (and their squares too: Box-Muller gives independent normals)."""
    noise = dgflow.SampleNoise(3, torch.arange(4000))
    xi = noise.normal((7,), dtype=torch.float64)
    assert xi.shape == (4000, 7) and torch.equal(xi[:, :4], noise.normal((8,), dtype=torch.float64)[:, :4])
    pair = noise.normal((2,), step=1, dtype=torch.float64).numpy()
    bound = 5 / math.sqrt(4000)
    assert abs(np.corrcoef(pair[:, 0], pair[:, 1])[0, 1]) < bound
    assert abs(np.corrcoef(pair[:, 0] ** 2, pair[:, 1] ** 2)[0, 1]) < bound
    assert abs(stats.spearmanr(np.abs(pair[:, 0]), np.abs(pair[:, 1])).statistic) < bound


@pytest.mark.parametrize("kind", ["normal", "uniform"])
def test_prefetched_steps_equal_single_draws(kind):
    """Walking through steps in order (which prefetches blocks) gives exactly the draws of fresh objects,
    also when the walk jumps back, skips, or alternates streams and shapes; for a tiny draw (a block of
    many steps) and a large one (one step per block)."""
    ids = torch.arange(3, 300, 2)
    for shape in [(2,), (1, 3, 50, 40)]:
        walker = dgflow.SampleNoise(4, ids)
        order = list(range(12)) + [3, 4, 5, 40, 41, 0, 1]
        for step in order:
            for stream in ("a", "b"):
                got = getattr(walker, kind)(shape, step=step, stream=stream)
                fresh = getattr(dgflow.SampleNoise(4, ids), kind)(shape, step=step, stream=stream)
                assert torch.equal(got, fresh), (shape, step, stream)


def test_normal_and_uniform_of_one_stream_differ():
    """The kind of draw is part of the counter: normal and uniform draws of one stream and step use
    different hashes (not the same bits transformed twice)."""
    noise = dgflow.SampleNoise(0, torch.arange(4000))
    u = noise.uniform(step=2, stream="x", dtype=torch.float64).numpy()
    xi = noise.normal(step=2, stream="x", dtype=torch.float64).numpy()
    assert abs(stats.spearmanr(u, np.abs(xi)).statistic) < 5 / math.sqrt(4000)
    assert abs(stats.spearmanr(u, xi).statistic) < 5 / math.sqrt(4000)


def test_bad_step_is_rejected():
    with pytest.raises(ValueError, match="step"):
        dgflow.SampleNoise(0, [1]).normal(step=-1)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_draws_match_cpu():
    """The same integers on every device; floats equal up to the rounding of log/cos/sin."""
    cpu = dgflow.SampleNoise(5, torch.arange(1000))
    gpu = dgflow.SampleNoise(5, torch.arange(1000), "cuda")
    for dtype in (torch.float32, torch.float64):
        torch.testing.assert_close(gpu.normal((33,), step=2, dtype=dtype).cpu(), cpu.normal((33,), step=2, dtype=dtype),
                                   rtol=1e-5, atol=1e-5)
    assert torch.equal(gpu.uniform((33,), dtype=torch.float64).cpu(), cpu.uniform((33,), dtype=torch.float64))
