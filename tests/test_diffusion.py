"""The EDM sampler against closed forms (Gaussian data): the noise schedule, the exact-score sampler
(deterministic and with churn), pluggable corrections, batch-size invariance, the epsilon-VP and
EDM-preconditioning adapters, and bad input.

The test bed (exact denoiser, exact noisy log-ratio, the sampler's exact output law and the
statistical tolerances) is gaussian_diffusion.py. Discriminator Guidance's own tests are in
tests/methods/test_guidance.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import dgflow
from dgflow.diffusion import (DiscriminatorGuidance, EDMPrecond, edm_sigmas, from_epsilon_vp, guide, sample_edm,
                              vp_time_to_sigma)

from gaussian_diffusion import FULL, M, M_WRONG, S, S_WRONG, TARGET, WRONG, assert_law, exact_log_ratio, latents

pytestmark = pytest.mark.usefixtures("one_thread")


# ------------------------------------------------------------------------------------------ schedule


def test_edm_sigmas_follow_the_formula():
    sig = edm_sigmas(18, 0.002, 80.0, 7.0)
    assert sig.shape == (19,) and sig[-1] == 0
    assert torch.isclose(sig[0], torch.tensor(80.0, dtype=torch.float64))
    assert torch.isclose(sig[17], torch.tensor(0.002, dtype=torch.float64))
    assert torch.all(sig[1:] < sig[:-1])
    i = 5
    expect = (80 ** (1 / 7) + i / 17 * (0.002 ** (1 / 7) - 80 ** (1 / 7))) ** 7
    assert math.isclose(float(sig[i]), expect, rel_tol=1e-12)


# ------------------------------------------------------------------------------------- closed form


def test_exact_score_sampler_reproduces_the_data():
    assert_law(sample_edm(TARGET, latents(), steps=100))


def test_wrong_score_alone_misses_the_data():
    x = sample_edm(WRONG, latents(), steps=100)
    with pytest.raises(AssertionError):
        assert_law(x)
    assert_law(x, M_WRONG, S_WRONG)  # it samples its own (wrong) law


def test_stochastic_sampler_with_churn_reproduces_the_data():
    kwargs = dict(steps=100, S_churn=40.0, seed=3)
    assert_law(sample_edm(TARGET, latents(), **kwargs))
    guided = guide(WRONG, exact_log_ratio, latents=latents(), w_euler=1.0, w_heun=1.0, sigma_range=FULL,
                   progress=False, **kwargs)
    assert_law(guided.x)


class ScoreFix:
    """A hand-written correction (the :class:`dgflow.diffusion.sampler.Correction` protocol): the exact score
    difference TARGET - WRONG, so ``d`` (= -sigma * score) loses ``(D_target - D_wrong) / sigma``; optionally a
    fixed churn for every sample."""

    def __init__(self, S_churn=None, exact=True):
        self.S_churn, self.exact = S_churn, exact

    def correction(self, latents, labels):  # the Guidance protocol: one correction per batch
        return self

    def churn(self, i, S_churn, S_noise):
        return (S_churn if self.S_churn is None else torch.full_like(S_churn, self.S_churn)), S_noise

    def euler(self, i, x, sigma):
        return (TARGET(x, sigma) - WRONG(x, sigma)) / sigma[:, None] if self.exact else 0.0

    heun = euler

    def info(self):
        return {"fixed": True}


def test_a_correction_plugs_into_the_euler_and_heun_stages():
    z = latents(500)
    calls = []
    fixed = sample_edm(WRONG, z, guidance=ScoreFix(), callback=calls.append)
    assert torch.allclose(fixed, sample_edm(TARGET, z), rtol=0, atol=1e-10)
    assert not torch.allclose(sample_edm(WRONG, z), sample_edm(TARGET, z), atol=1e-2)
    assert calls[-1]["fixed"] and "log_ratio" not in calls[-1]  # a correction's info() reaches the callback


def test_a_correction_sets_the_churn():
    z = latents(200)
    churned = sample_edm(TARGET, z, S_churn=5.0, seed=3)
    assert torch.equal(sample_edm(TARGET, z, seed=3, guidance=ScoreFix(S_churn=5.0, exact=False)), churned)
    assert not torch.equal(churned, sample_edm(TARGET, z, seed=3))


# ------------------------------------------------------------------------------------ reproducibility


def test_results_do_not_depend_on_batch_size():
    kwargs = dict(n=37, shape=(2,), w_euler=1.5, w_heun=0.5, boosting=True, S_churn=5.0, seed=11, progress=False)
    a = guide(WRONG32, exact_log_ratio_f32, batch_size=37, **kwargs).x
    b = guide(WRONG32, exact_log_ratio_f32, batch_size=5, **kwargs).x
    assert torch.equal(a, b)
    ids = torch.arange(10, 20)
    c = guide(WRONG32, exact_log_ratio_f32, sample_ids=ids, **{**kwargs, "n": 10}).x
    assert torch.equal(c, a[10:20])  # a sample depends on its id, not on which others are drawn


def exact_log_ratio_f32(x, sigma, labels=None):
    return exact_log_ratio(x.double(), sigma.double()).to(x.dtype)


class _F32:
    def __init__(self, g):
        self.g = g

    def __call__(self, x, sigma, labels=None):
        return self.g(x.double(), sigma.double()).to(x.dtype)


WRONG32 = _F32(WRONG)


def test_unguided_guide_equals_sample_edm():
    a = guide(TARGET, None, latents=latents(50), progress=False).x
    assert torch.equal(a, sample_edm(TARGET, latents(50)))


# ------------------------------------------------------------------------------------------ adapters


class GaussianEpsVP(nn.Module):
    """Exact noise prediction of data N(m, s^2 I) in the VP convention (a network the project did not train).

    x_t = sqrt(abar_t) x0 + sqrt(1 - abar_t) eps  =>  E[eps | x_t] = sqrt(1 - abar) (x_t - sqrt(abar) m) / (abar s^2 + 1 - abar).
    Discrete (DDPM linear betas 1e-4..0.02, 1000 steps) with integer timesteps, or continuous VP
    (beta_min 0.1, beta_max 20) with t in [0, 1] scaled by 999 as EDM's VP networks take it.
    """

    def __init__(self, m, s, discrete: bool = True):
        super().__init__()
        self.m, self.s, self.discrete = torch.as_tensor(m, dtype=torch.float64), float(s), discrete
        self.alphas_cumprod = torch.cumprod(1 - torch.linspace(1e-4, 0.02, 1000, dtype=torch.float64), 0)

    def abar(self, t):
        if self.discrete:
            assert t.dtype == torch.int64
            return self.alphas_cumprod[t]
        t = t / 999
        return torch.exp(-(0.5 * 19.9 * t**2 + 0.1 * t))

    def forward(self, x_t, t):
        a = self.abar(t)[:, None]
        return (1 - a).sqrt() * (x_t - a.sqrt() * self.m) / (a * self.s**2 + 1 - a)


def test_epsilon_vp_adapter_matches_the_edm_denoiser():
    eps = GaussianEpsVP(M, S)
    D = from_epsilon_vp(eps, eps.alphas_cumprod)
    x = latents(64) * 3
    sig = D.sigmas[torch.randint(1000, (64,), generator=torch.Generator().manual_seed(1))]
    assert torch.allclose(D(x, sig), TARGET(x, sig), atol=1e-10)
    # a sigma between two timesteps uses the nearest one
    t = D.vp_time(sig * 1.0001)
    assert torch.equal(D.sigmas[t], sig)
    cont = from_epsilon_vp(GaussianEpsVP(M, S, discrete=False), time_scale=999)
    sig = torch.exp(torch.linspace(-4, 4, 64, dtype=torch.float64))
    assert torch.allclose(cont(x, sig), TARGET(x, sig), atol=1e-10)
    assert vp_time_to_sigma(1.0) == pytest.approx(cont.sigma_max)


def test_fractional_timesteps_interpolate_in_log_sigma():
    D = from_epsilon_vp(GaussianEpsVP(M, S), GaussianEpsVP(M, S).alphas_cumprod, timestep="fractional")
    sig = D.sigmas[[10, 500]]
    assert torch.allclose(D.vp_time(sig), torch.tensor([10.0, 500.0], dtype=torch.float64))
    mid = (D.sigmas[10].log() * 0.75 + D.sigmas[11].log() * 0.25).exp()[None]
    assert D.vp_time(mid).item() == pytest.approx(10.25)


def test_guidance_wraps_an_epsilon_network_it_did_not_train():
    eps_wrong = GaussianEpsVP(M_WRONG, S_WRONG)
    D = from_epsilon_vp(eps_wrong, eps_wrong.alphas_cumprod)
    # the sampler's noise levels are rounded to the model's discrete ones (EDM's round_sigma)
    res = guide(D, exact_log_ratio, latents=latents(), w_euler=1.0, w_heun=1.0, sigma_range=FULL, steps=100,
                progress=False)
    assert_law(res.x, sigma_max=float(D.round_sigma(torch.tensor([80.0], dtype=torch.float64))))
    unguided = guide(D, None, latents=latents(), steps=100, progress=False).x
    with pytest.raises(AssertionError):
        assert_law(unguided)


def test_edm_preconditioning_is_exact_for_an_exact_network():
    """EDMPrecond with the network F = (D* - c_skip x) / c_out reproduces the exact denoiser D*."""

    class Inverse(nn.Module):
        def forward(self, x_in, c_noise, labels=None):
            sigma = (4 * c_noise).exp()
            x = x_in * (sigma**2 + 0.25).sqrt()[:, None]
            c_skip = 0.25 / (sigma**2 + 0.25)
            c_out = sigma * 0.5 / (sigma**2 + 0.25).sqrt()
            return (TARGET(x, sigma) - c_skip[:, None] * x) / c_out[:, None]

    D = EDMPrecond(Inverse(), sigma_data=0.5)
    x, sig = latents(20), torch.exp(torch.linspace(-5, 4, 20, dtype=torch.float64))
    assert torch.allclose(D(x, sig), TARGET(x, sig), atol=1e-10)
    # EDM's loss is 0 at the exact denoiser only in expectation; here check its weighting
    noise = latents(20, seed=5)
    loss = D.loss(x, sig, noise)
    manual = ((sig**2 + 0.25) / (sig * 0.5) ** 2) * ((TARGET(x + sig[:, None] * noise, sig) - x) ** 2).mean(1)
    assert torch.allclose(loss, manual)


# ------------------------------------------------------------------------------------ bad input


@pytest.mark.parametrize("kwargs, match", [
    (dict(steps=1), "steps must be a whole number >= 2"),
    (dict(sigma_min=1.0, sigma_max=0.5), "sigma_min < sigma_max"),
    (dict(rho=0), "rho must be > 0"),
    (dict(S_churn=-1.0), "S_churn must be a finite number >= 0"),
])
def test_sampler_settings_are_checked(kwargs, match):
    with pytest.raises(ValueError, match=match):
        sample_edm(TARGET, latents(4), **kwargs)


def test_bad_inputs_are_clear_errors():
    with pytest.raises(ValueError, match="at least 2-D"):
        sample_edm(TARGET, torch.zeros(3))
    with pytest.raises(ValueError, match="NaN"):
        sample_edm(TARGET, torch.full((2, 2), float("nan")))
    with pytest.raises(ValueError, match="n \\(how many samples\\) and shape"):
        guide(TARGET, None, n=5)
    with pytest.raises(ValueError, match="labels must hold one label per sample"):
        guide(TARGET, None, n=5, shape=(2,), labels=torch.zeros(3))
    with pytest.raises(ValueError, match="boosting needs a discriminator"):
        guide(TARGET, None, n=5, shape=(2,), boosting=True)
    with pytest.raises(ValueError, match="one logit per sample"):
        guide(WRONG32, lambda x, s: torch.zeros(len(x), 3), n=4, shape=(2,), progress=False)
    with pytest.raises(ValueError, match="sigma_range"):
        DiscriminatorGuidance(exact_log_ratio, sigma_range=(1.0, 0.5))
    with pytest.raises(ValueError, match="w_euler must be a finite number"):
        DiscriminatorGuidance(exact_log_ratio, w_euler=float("nan"))
    with pytest.raises(TypeError, match="callable"):
        DiscriminatorGuidance("not a model")
    with pytest.raises(ValueError, match="alphas_cumprod must decrease"):
        from_epsilon_vp(lambda x, t: x, torch.linspace(0.1, 0.9, 10))
    with pytest.raises(ValueError, match="timestep must be"):
        from_epsilon_vp(lambda x, t: x, timestep="round")
    with pytest.raises(ValueError, match="one noise level per sample"):
        EDMPrecond(nn.Identity())(torch.zeros(3, 2), torch.ones(2))


def test_public_api_exports_guide():
    assert dgflow.guide is guide
