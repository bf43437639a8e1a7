"""Fidelity: each method against a small hand-written transcription of its authors' update.

The transcriptions below are written from the algorithm boxes and equations of the papers
(as restated in the project's methods.md), in the authors' order of operations, with no code
taken from the reference repositories. They run on fixed tiny float64 networks with the same
noise dgflow draws (its per-sample streams: ``SampleNoise(seed, ids)``, stream names
``"dgflow"``, ``"ddls"``, ``"ddls-accept"``, ``"churn"``), so the comparisons are at float
tolerance. The README's "Fidelity to the reference implementations" table quotes the
differences measured here (``python -m pytest tests/test_fidelity.py -s`` prints them).

Deliberate deviations are pinned too: DOT's exact radial projection (the reference divides by
a hard-coded 11.31), and DG's per-sample noise-range check (the transcription uses the authors'
per-batch check on a test bed where the two agree).
"""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from dgflow import refine
from dgflow.diffusion import DiscriminatorGuidance, guide, sample_edm
from dgflow.diffusion.sampler import edm_sigmas
from dgflow.refiners.dot import DOT
from dgflow.rng import SampleNoise
from dgflow.target import Target

SEED = 3
B, LATENT, DATA = 6, 3, 2


def _mlp(n_in: int, n_out: int, seed: int, scale: float = 1.0) -> nn.Module:
    torch.manual_seed(seed)
    net = nn.Sequential(nn.Linear(n_in, 16), nn.Tanh(), nn.Linear(16, 16), nn.Softplus(), nn.Linear(16, n_out)).double()
    with torch.no_grad():
        net[-1].weight.mul_(scale)
    for p in net.parameters():
        p.requires_grad_(False)
    return net


class Generator(nn.Module):
    def __init__(self, amplitude: float = 1.0):
        super().__init__()
        self.net, self.amplitude = _mlp(LATENT, DATA, 0), amplitude

    def forward(self, z):
        return self.amplitude * torch.tanh(self.net(z))


class Critic(nn.Module):
    """``d(x)``: a small MLP plus ``tilt . x`` (the tilt pushes DOT towards the box's corner)."""

    def __init__(self, tilt: float = 0.0):
        super().__init__()
        self.net, self.tilt = _mlp(DATA, 1, 1), tilt

    def forward(self, x):
        return self.net(x).squeeze(1) + self.tilt * x.sum(1)


def _z0() -> torch.Tensor:
    torch.manual_seed(11)
    return torch.randn(B, LATENT, dtype=torch.float64)


def _logit_and_grad(G, D, z):
    z = z.detach().requires_grad_(True)
    d = D(G(z))
    (g,) = torch.autograd.grad(d.sum(), z)
    return d.detach(), g


def report(name: str, diff: float) -> None:
    print(f"\nfidelity {name}: max abs difference {diff:.3g}")


# ----------------------------------------------------------------------------- DGflow
def dgflow_transcription(G, D, z, f, eta, gamma, steps, noise):
    """Ansari et al., Algorithm 1: z <- z + eta s(d) grad_z d(g(z)) + sqrt(2 eta) sqrt(gamma) xi."""
    for n in range(steps):
        d, grad = _logit_and_grad(G, D, z)
        s = {"KL": torch.ones_like(d), "JS": 1 / (1 + 1 / d.exp()), "logD": 1 / (1 + d.exp())}[f]
        xi = noise.normal((LATENT,), step=n, stream="dgflow", dtype=torch.float64)
        z = z + eta * s[:, None] * grad + math.sqrt(2 * eta) * math.sqrt(gamma) * xi
    return z


@pytest.mark.parametrize("f", ["KL", "JS", "logD"])
def test_dgflow_matches_the_authors_update(f):
    G, D, z0 = Generator(), Critic(), _z0()
    res = refine(G, D, z=z0, method="dgflow", f=f, eta=0.1, gamma=0.01, steps=7, seed=SEED, save_interval=None,
                 progress=False, batch_size=4)
    ref = dgflow_transcription(G, D, z0, f, 0.1, 0.01, 7, SampleNoise(SEED, torch.arange(B)))
    diff = float((res.z - ref).abs().max())
    report(f"DGflow {f}", diff)
    assert diff < 1e-12


# ----------------------------------------------------------------------------- DDLS
def ddls_transcription(G, D, z, eps, steps, decay, noise, metropolis=False):
    """Che et al.: E(z) = |z|^2/2 - d(g(z)); z' = z - (eps/2) grad E + sqrt(eps) xi; MALA: accept with
    min(1, exp(E(z) - E(z')) q(z | z') / q(z' | z)), q(a | b) = N(a; b - (eps/2) grad E(b), eps I)."""

    def energy_and_grad(z):
        d, g = _logit_and_grad(G, D, z)
        return 0.5 * (z * z).sum(1) - d, z - g

    for n in range(steps):
        e = eps * decay**n
        E, gE = energy_and_grad(z)
        xi = noise.normal((LATENT,), step=n, stream="ddls", dtype=torch.float64)
        prop = z - 0.5 * e * gE + math.sqrt(e) * xi
        if not metropolis:
            z = prop
            continue
        E2, gE2 = energy_and_grad(prop)
        log_q_fwd = -((prop - (z - 0.5 * e * gE)) ** 2).sum(1) / (2 * e)
        log_q_rev = -((z - (prop - 0.5 * e * gE2)) ** 2).sum(1) / (2 * e)
        alpha = torch.clamp(torch.exp(E - E2 + log_q_rev - log_q_fwd), max=1.0)
        u = noise.uniform(step=n, stream="ddls-accept", dtype=torch.float64)
        z = torch.where((u < alpha)[:, None], prop, z)
    return z


@pytest.mark.parametrize("metropolis", [False, True])
def test_ddls_matches_langevin_and_mala(metropolis):
    G, D, z0 = Generator(), Critic(), _z0()
    eps = 1.0 if metropolis else 0.01  # a large step so that MALA rejects some proposals
    res = refine(G, D, z=z0, method="ddls", eps=eps, decay=0.97, steps=9, metropolis=metropolis, seed=SEED,
                 save_interval=None, progress=False, batch_size=4)
    ref = ddls_transcription(G, D, z0, eps, 9, 0.97, SampleNoise(SEED, torch.arange(B)), metropolis)
    diff = float((res.z - ref).abs().max())
    report(f"DDLS metropolis={metropolis}", diff)
    assert diff < 1e-12
    if metropolis:
        assert 0 < res.info["acceptance_rate"] < 1


# ----------------------------------------------------------------------------- DOT
def dot_h(D_of, pos, start, k_eff, delta=0.001):
    """Tanaka's H(z) = -d(g(z)) / k_eff + || z - z_y + delta ||_2, summed over the batch."""
    return (-D_of(pos) / k_eff + (pos - start + delta).flatten(1).norm(dim=1)).sum()


def test_dot_latent_sgd_matches_the_update_with_an_exact_radial_projection():
    G, D, z0 = Generator(), Critic(), _z0()
    k, lr, steps = 1.7, 0.05, 6
    res = refine(G, D, z=z0, method="dot", k_eff=k, lr=lr, steps=steps, save_interval=None, progress=False)
    z = z0.clone()
    for _ in range(steps):
        zz = z.clone().requires_grad_(True)
        (g,) = torch.autograd.grad(dot_h(lambda p: D(G(p)), zz, z0, k), zz)
        # dgflow's deliberate deviation: the exact projection g - z <g, z> / |z|^2 (the reference divides
        # <g, z> by a hard-coded 11.31 = sqrt(128) instead of |z|^2)
        g = g - z * ((g * z).sum(1, keepdim=True) / (z * z).sum(1, keepdim=True))
        z = z - lr * g
    diff = float((res.z - z).abs().max())
    report("DOT latent (SGD, normal prior)", diff)
    assert diff < 1e-13
    assert float((res.z - z0).abs().max()) > 1e-3  # it moved ...
    assert torch.allclose(res.z.norm(dim=1), z0.norm(dim=1), rtol=5e-3)  # ... along its shell (to first order)


def test_dot_data_space_adam_with_bounds_matches_the_reference_demo_update():
    """Transporter_in_target of the reference 2-D demo: Adam(lr, betas (0, 0.9)) on H(x), then clip x to [-2, 2]."""
    G, D, z0 = Generator(amplitude=2.5), Critic(tilt=4.0), _z0()
    k, lr, steps = 1.3, 0.01, 60
    opts = dict(space="data", optimizer="adam", lr=lr, betas=(0.0, 0.9), steps=steps, k_eff=k, save_interval=None,
                progress=False)
    res = refine(G, D, z=z0, method="dot", bounds=(-2, 2), **opts)
    start = G(z0)
    x = start.clone().requires_grad_(True)
    opt = torch.optim.Adam([x], lr=lr, betas=(0.0, 0.9), eps=1e-8)
    for _ in range(steps):
        opt.zero_grad()
        dot_h(D, x, start, k).backward()
        opt.step()
        with torch.no_grad():
            x.clamp_(-2, 2)
    diff = float((res.x - x.detach()).abs().max())
    report("DOT data space (Adam, bounds [-2, 2])", diff)
    assert diff < 1e-12
    assert float(res.x.abs().max()) == 2.0  # the box was reached: the clipping was exercised
    unbounded = refine(G, D, z=z0, method="dot", **opts).x
    assert float(unbounded.abs().max()) > 2.05  # without bounds the same run leaves the box


def test_dot_k_eff_is_the_mean_of_rounds_of_pairwise_maxima():
    """The reference demo's K: mean over 10 rounds of max_pairs |d(x2) - d(x1)| / |x2 - x1|."""
    D = Critic()
    torch.manual_seed(5)
    pools = {"dot-pairs-1": torch.randn(12, DATA, dtype=torch.float64),
             "dot-pairs-2": torch.randn(12, DATA, dtype=torch.float64)}
    target = Target(None, _as_ratio(D), None)
    dot, info = DOT(k_eff_pairs=4, k_eff_rounds=3).prepare(lambda stream, count: (pools[stream][:count], target))
    x1, x2 = pools["dot-pairs-1"], pools["dot-pairs-2"]
    slopes = (D(x2) - D(x1)).abs() / (x2 - x1).norm(dim=1)
    expected = sum(float(slopes[4 * r:4 * r + 4].max()) for r in range(3)) / 3
    assert dot.k_eff == info["k_eff"] == pytest.approx(expected, rel=1e-12)
    one, _ = DOT(k_eff_pairs=4).prepare(lambda stream, count: (pools[stream][:count], target))  # one round: the
    # maximum over the first 4 pairs, as before
    assert one.k_eff == pytest.approx(float(slopes[:4].max()), rel=1e-12)


def _as_ratio(D):
    from dgflow.ratio import DensityRatio

    return DensityRatio(D)


# ----------------------------------------------------------------------------- EDM + DG
class Denoiser(nn.Module):
    """A tiny EDM-form denoiser D(x, sigma) (an MLP of x and log sigma)."""

    def __init__(self, dtype=torch.float64):
        super().__init__()
        self.net = _mlp(DATA + 1, DATA, 2).to(dtype)

    def forward(self, x, sigma):
        s = sigma.reshape(-1, 1).to(x.dtype)
        return x / (1 + s**2) + self.net(torch.cat([x / (1 + s**2).sqrt(), s.log() / 4], 1))


class TimeLogit(nn.Module):
    """A time-dependent discriminator's logit log(d / (1 - d)) at (x, sigma)."""

    def __init__(self, offset: float = 0.0, dtype=torch.float64):
        super().__init__()
        self.net, self.offset = _mlp(DATA + 1, 1, 4, scale=3.0).to(dtype), offset

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


def test_clip_validation():
    with pytest.raises(ValueError, match="clip must be"):
        DiscriminatorGuidance(TimeLogit(), clip=0.7)
    with pytest.raises(ValueError, match="boost_noise"):
        DiscriminatorGuidance(TimeLogit(), boost_noise=-1.0)


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


def test_dot_and_config_options_are_validated():
    from dgflow.config import validate_sample_config

    with pytest.raises(ValueError, match="bounds"):
        DOT(bounds=(2, -2))
    with pytest.raises(ValueError, match="k_eff_rounds"):
        DOT(k_eff_rounds=0)
    base = {"denoiser_type": "mlp_denoiser", "disc_type": "mlp_time_discriminator"}
    assert validate_sample_config(base).dg_clip == 1e-5  # the authors' clipping by default
    assert validate_sample_config({**base, "dg_clip": None}).dg_clip is None
    with pytest.raises(ValueError, match="dg_clip"):
        validate_sample_config({**base, "dg_clip": 0.7})
