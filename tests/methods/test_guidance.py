"""Discriminator Guidance (Kim et al.) on the EDM sampler: every test about this one method.

* closed form (gaussian_diffusion.py): guidance with the exact noisy log-ratio turns a
  deliberately wrong Gaussian score model into the data's law (both Heun stages at weight 1,
  the authors' default weights, the default noise range, class-conditional guidance); boosting
  churns and doubles the weight only where the log-ratio is negative.
* fidelity: EDM's Heun sampler with DG (with and without boosting) against a transcription of
  Karras et al.'s Algorithm 2 with Kim et al.'s guidance (networks built
  with fidelity_models.py, noise stream "churn"); the authors'
  clipping of d to [1e-5, 1 - 1e-5]; float64 sampler arithmetic. One deliberate deviation is
  pinned: the per-sample noise-range check (the transcription uses the authors' per-batch check on
  a test bed where the two agree).
* option errors: clip, boost_noise.

The EDM sampler itself (schedule, churn, pluggable corrections, adapters) is tested in
tests/test_diffusion.py.
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dgflow.diffusion import DiscriminatorGuidance, guide, sample_edm, vp_time_to_sigma
from dgflow.diffusion.sampler import edm_sigmas
from dgflow.rng import SampleNoise

from fidelity_models import DATA, SEED, mlp, report
from gaussian_diffusion import FULL, M, N, S, S_WRONG, TARGET, WRONG, Gaussian, assert_law, exact_log_ratio, latents

pytestmark = pytest.mark.usefixtures("one_thread")


# -------------------------------------------------------------------------------------- closed form


def test_guidance_with_the_exact_ratio_recovers_the_data():
    res = guide(WRONG, exact_log_ratio, latents=latents(), w_euler=1.0, w_heun=1.0, sigma_range=FULL, steps=100,
                progress=False)
    assert_law(res.x)
    # the corrected score is the exact one, so the path equals the exact-score sampler's (up to rounding)
    exact = sample_edm(TARGET, latents(), steps=100)
    assert torch.allclose(res.x, exact, atol=1e-9)


def test_guidance_at_18_steps_matches_the_exact_score_sampler():
    """At EDM's 18 steps guidance (w = 1, both stages) reproduces the exact-score sampler, discretisation included."""
    res = guide(WRONG, exact_log_ratio, latents=latents(), w_euler=1.0, w_heun=1.0, sigma_range=FULL, progress=False)
    assert torch.allclose(res.x, sample_edm(TARGET, latents()), atol=1e-9)


def test_authors_default_weights_converge_to_the_data():
    """Euler weight 2, Heun weight 0 (the authors' default) carries the correction at first order:
    with 400 steps it recovers the data (measured 18 steps: mean 0.83 vs 0.994; 400: 0.994)."""
    res = guide(WRONG, exact_log_ratio, latents=latents(), w_euler=2.0, w_heun=0.0, sigma_range=FULL, steps=400,
                progress=False)
    assert_law(res.x)


def test_default_noise_range_leaves_only_a_negligible_error():
    """Without guidance below sigma = 0.0447 (the authors' t >= 0.01) the wrong score acts on a
    nearly clean sample; the law is still the data's within the statistical tolerance."""
    res = guide(WRONG, exact_log_ratio, latents=latents(), w_euler=1.0, w_heun=1.0, steps=100, progress=False)
    assert res.options["sigma_range"][0] == pytest.approx(vp_time_to_sigma(0.01))
    assert_law(res.x)


def test_boosting_adds_churn_and_weight_only_where_the_ratio_is_negative():
    calls = []
    g = DiscriminatorGuidance(exact_log_ratio, w_euler=1.0, w_heun=0.0, sigma_range=FULL, boosting=True)
    z = latents(200)
    boosted = sample_edm(WRONG, z, guidance=g, callback=calls.append)
    plain = sample_edm(WRONG, z, guidance=DiscriminatorGuidance(exact_log_ratio, 1.0, 0.0, FULL))
    assert not torch.equal(boosted, plain)
    # step 5 (a boosting step): churned exactly the samples whose step-4 log-ratio was negative
    neg = calls[4]["log_ratio"] < 0
    assert 0 < int(neg.sum()) < len(z)
    sigma5 = calls[5]["sigma"]
    assert torch.all(calls[5]["sigma_hat"][neg] > sigma5) and torch.all(calls[5]["sigma_hat"][~neg] == sigma5)


def test_class_conditional_guidance_recovers_each_class():
    """Labels reach the denoiser and the discriminator: class c has data N(m_c, s^2 I), the wrong model
    N(m_c + 1, s'^2 I); guidance with the exact class-conditional ratio recovers every class."""
    shift = torch.tensor([[0.0, 0.0], [2.0, -1.0]], dtype=torch.float64)
    targets = [Gaussian(torch.tensor(M, dtype=torch.float64) + shift[c], S) for c in range(2)]
    wrongs = [Gaussian(torch.tensor(M, dtype=torch.float64) + shift[c] + 1, S_WRONG) for c in range(2)]

    def by_class(models, fn):
        def call(x, sigma, labels):
            out = torch.stack([getattr(m, fn)(x, sigma) if fn != "__call__" else m(x, sigma) for m in models])
            return out[labels, torch.arange(len(x))]
        return call

    denoiser = by_class(wrongs, "__call__")
    log_t, log_w = by_class(targets, "log_p"), by_class(wrongs, "log_p")
    labels = torch.arange(N) % 2
    res = guide(denoiser, lambda x, s, y: log_t(x, s, y) - log_w(x, s, y), latents=latents(), labels=labels,
                w_euler=1.0, w_heun=1.0, sigma_range=FULL, steps=100, progress=False)
    for c in range(2):
        assert_law(res.x[labels == c], m=(torch.tensor(M, dtype=torch.float64) + shift[c]).numpy())


# ----------------------------------------------------------------- fidelity to the authors' sampler


class Denoiser(nn.Module):
    """A tiny EDM-form denoiser D(x, sigma) (an MLP of x and log sigma)."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.net = mlp(DATA + 1, DATA, 2).to(dtype)

    def forward(self, x, sigma):
        s = sigma.reshape(-1, 1).to(x.dtype)
        return x / (1 + s**2) + self.net(torch.cat([x / (1 + s**2).sqrt(), s.log() / 4], 1))


class TimeLogit(nn.Module):
    """A time-dependent discriminator's logit log(d / (1 - d)) at (x, sigma)."""

    def __init__(self, offset: float = 0.0, dtype=torch.float64):
        super().__init__()
        self.net, self.offset = mlp(DATA + 1, 1, 4, scale=3.0).to(dtype), offset

    def forward(self, x, sigma):
        s = sigma.reshape(-1, 1).to(x.dtype)
        return self.net(torch.cat([x, s.log()], 1)).squeeze(1) + self.offset


def edm_dg_transcription(den, logit_net, latents, *, w1, w2, sigma_lo, boosting, S_churn, S_noise, steps=18,
                         noise=None, clip=1e-5, net_dtype=torch.float64):
    """Karras et al. Algorithm 2 (float64 sampler arithmetic, networks in net_dtype) with Kim et al.'s DG:
    d_phi = sigmoid(logit) clipped to [clip, 1 - clip], guidance g = -sigma^2 grad_x log(d_phi / (1 - d_phi)),
    d += w g / sigma. Guidance only when the batch's smallest sigma is >= sigma_lo (the authors' check).
    Boosting: at i % 5 == 0 samples with log-ratio < 0 get S_churn 4 and S_noise 1.000; at i % 2 == 0
    their guidance is doubled."""
    f64 = torch.float64
    t = edm_sigmas(steps)
    n = len(latents)

    def D(x, s):
        return den(x.to(net_dtype), s.to(net_dtype)).to(f64)

    def guidance(x, s):
        if float(s.min()) < sigma_lo:
            return torch.zeros_like(x), torch.full((n,), 1e7, dtype=f64)
        with torch.enable_grad():
            xx = x.to(net_dtype).detach().requires_grad_(True)
            # sigmoid -> clip -> log(d / (1 - d)) in float64: in float32 this path carries a rounding
            # error of about eps32 / (1 - d) that dgflow's clamped logit does not have
            p = torch.sigmoid(logit_net(xx, s.to(net_dtype)).to(f64))
            if clip is not None:
                p = torch.clip(p, clip, 1 - clip)
            log_ratio = torch.log(p / (1 - p))
            (g,) = torch.autograd.grad(log_ratio.sum(), xx)
        return -(s**2)[:, None] * g.to(f64), log_ratio.detach().to(f64)

    x_next = latents.to(f64) * t[0]
    log_ratio = torch.full((n,), math.inf, dtype=f64)
    for i in range(steps):
        t_cur, t_nxt = t[i], t[i + 1]
        x_cur = x_next
        churn = torch.full((n,), float(S_churn), dtype=f64)
        s_noise = torch.full((n,), float(S_noise), dtype=f64)
        if boosting and i % 5 == 0:
            churn[log_ratio < 0] = 4.0
            s_noise[log_ratio < 0] = 1.000
        gamma = torch.minimum(churn / steps, torch.full_like(churn, math.sqrt(2) - 1))
        t_hat = t_cur + gamma * t_cur
        xi = noise.normal((DATA,), step=i, stream="churn", dtype=f64)
        x_hat = x_cur + ((t_hat**2 - t_cur**2).sqrt() * s_noise)[:, None] * xi
        d_cur = (x_hat - D(x_hat, t_hat)) / t_hat[:, None]
        if w1 != 0:
            g, log_ratio = guidance(x_hat, t_hat)
            if boosting and i % 2 == 0:
                g[log_ratio < 0] *= 2.0
            d_cur = d_cur + w1 * (g / t_hat[:, None])
        x_next = x_hat + (t_nxt - t_hat)[:, None] * d_cur
        if i < steps - 1:
            tn = t_nxt.expand(n)
            d_prime = (x_next - D(x_next, tn)) / t_nxt
            if w2 != 0:
                g2, _ = guidance(x_next, tn)
                d_prime = d_prime + w2 * (g2 / t_nxt)
            x_next = x_hat + (t_nxt - t_hat)[:, None] * (0.5 * d_cur + 0.5 * d_prime)
    return x_next


def _latents(dtype=torch.float64):
    torch.manual_seed(21)
    return torch.randn(64, DATA, dtype=torch.float64).to(dtype)


@pytest.mark.parametrize("boosting", [False, True])
def test_edm_heun_with_dg_matches_the_authors_sampler(boosting):
    den, disc, z = Denoiser(), TimeLogit(), _latents()
    lo = 0.0447
    kwargs = dict(w1=2.0, w2=0.5, sigma_lo=lo, boosting=boosting, S_churn=30.0, S_noise=1.3)
    ref = edm_dg_transcription(den, disc, z, noise=SampleNoise(SEED, torch.arange(len(z))), **kwargs)
    out = guide(den, disc, latents=z, w_euler=2.0, w_heun=0.5, sigma_range=(lo, math.inf), boosting=boosting,
                S_churn=30.0, S_noise=1.3, seed=SEED, batch_size=13, progress=False).x
    diff = float((out - ref).abs().max())
    report(f"EDM Heun + DG (boosting={boosting}, S_noise 1.3)", diff)
    assert diff < 1e-10
    plain = edm_dg_transcription(den, disc, z, noise=SampleNoise(SEED, torch.arange(len(z))),
                                 **{**kwargs, "w1": 0.0, "w2": 0.0, "boosting": False})
    unguided = guide(den, None, latents=z, S_churn=30.0, S_noise=1.3, seed=SEED, progress=False).x
    report("EDM Heun (no guidance)", float((unguided - plain).abs().max()))
    assert float((unguided - plain).abs().max()) < 1e-12


def test_boosted_samples_get_the_authors_churn_noise_scale():
    """With S_noise != 1, boosted samples get S_noise 1.000 (option boost_noise); the rest get S_noise."""
    den, disc, z = Denoiser(), TimeLogit(), _latents()
    noise = SampleNoise(SEED, torch.arange(len(z)))
    common = dict(w_euler=2.0, sigma_range=(0.0447, math.inf), boosting=True, S_churn=30.0, S_noise=1.3, seed=SEED,
                  progress=False)
    ref = edm_dg_transcription(den, disc, z, w1=2.0, w2=0.0, sigma_lo=0.0447, boosting=True, S_churn=30.0,
                               S_noise=1.3, noise=noise)
    assert float((guide(den, disc, latents=z, **common).x - ref).abs().max()) < 1e-10
    # boost_noise = S_noise reproduces the old behaviour, which the authors' sampler does not
    old = guide(den, disc, latents=z, boost_noise=1.3, **common).x
    assert float((old - ref).abs().max()) > 1e-3


def test_saturated_discriminator_gives_no_guidance_by_default():
    """The authors clip d to [1e-5, 1 - 1e-5]: where |logit| > 11.51 the guidance gradient is zero."""
    den, z = Denoiser(), _latents()
    saturated = TimeLogit(offset=40.0)  # logits ~ 40 everywhere: d_phi = 1 to float precision
    lo = 0.0447
    unguided = guide(den, None, latents=z, progress=False).x
    clipped = guide(den, saturated, latents=z, sigma_range=(lo, math.inf), progress=False).x
    assert torch.equal(clipped, unguided)
    ref = edm_dg_transcription(den, saturated, z, w1=2.0, w2=0.0, sigma_lo=lo, boosting=False, S_churn=0.0,
                               S_noise=1.0, noise=SampleNoise(0, torch.arange(len(z))))
    assert float((clipped - ref).abs().max()) < 1e-12
    raw = guide(den, saturated, latents=z, sigma_range=(lo, math.inf), clip=None, progress=False).x
    diff = float((raw - unguided).abs().max())
    report("DG on a saturated discriminator, clip=None vs the authors' clip", diff)
    assert diff > 1e-2  # the raw logit still guides
    g = DiscriminatorGuidance(saturated, sigma_range=(lo, math.inf))
    grad, log_ratio = g.log_ratio_grad(z, torch.full((len(z),), 1.0, dtype=torch.float64))
    assert torch.equal(grad, torch.zeros_like(grad))
    assert torch.allclose(log_ratio, torch.full_like(log_ratio, math.log((1 - 1e-5) / 1e-5)))


def test_sampler_arithmetic_is_float64_for_float32_latents_and_networks():
    """EDM's sampler runs in float64 and casts net(...) outputs up; dgflow does the same by default
    (networks stay float32), so the float32 result is the float64 transcription rounded once."""
    den, disc, z = Denoiser(torch.float32), TimeLogit(dtype=torch.float32), _latents(torch.float32)
    kwargs = dict(w_euler=2.0, sigma_range=(0.0447, math.inf), S_churn=10.0, seed=SEED, progress=False)
    ref = edm_dg_transcription(den, disc, z, w1=2.0, w2=0.0, sigma_lo=0.0447, boosting=False, S_churn=10.0,
                               S_noise=1.0, noise=SampleNoise(SEED, torch.arange(len(z))), net_dtype=torch.float32)
    out = guide(den, disc, latents=z, **kwargs).x
    assert out.dtype == torch.float32
    one_ulp = torch.finfo(torch.float32).eps * ref.abs().clamp_min(1.0)
    assert bool(((out.double() - ref).abs() <= one_ulp).all())
    f32 = guide(den, disc, latents=z, dtype=None, **kwargs).x  # the float32 arithmetic of the old sampler
    report("EDM float32 arithmetic vs float64", float((f32.double() - ref).abs().max()))
    assert not bool(((f32.double() - ref).abs() <= one_ulp).all())
    ids = torch.arange(len(z))
    direct = sample_edm(den, z, guidance=DiscriminatorGuidance(disc, 2.0, 0.0, (0.0447, math.inf)), S_churn=10.0,
                        seed=SEED, sample_ids=ids)
    assert torch.equal(direct, out)


# ------------------------------------------------------------------------------------ option errors


def test_clip_validation():
    with pytest.raises(ValueError, match="clip must be"):
        DiscriminatorGuidance(TimeLogit(), clip=0.7)
    with pytest.raises(ValueError, match="boost_noise"):
        DiscriminatorGuidance(TimeLogit(), boost_noise=-1.0)
