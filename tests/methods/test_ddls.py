"""DDLS (Che et al., discriminator driven latent sampling): every test about this one method.

* closed form: with the exact logit of an affine Gaussian case (conftest.py), MALA-adjusted DDLS
  samples the latent target N(A^{-1}(m - b), s^2 (A^T A)^{-1}), so g(z) ~ mu; acceptance-rate bounds.
* fidelity: unadjusted Langevin and MALA against a transcription of the paper's update and
  textbook MALA, on the networks and noise of fidelity_models.py (streams "ddls", "ddls-accept").
* the step reports its Metropolis test (``StepInfo``).
* eps="auto": the largest eps whose MALA acceptance clears the optimum.
* option errors: metropolis=True with noise_scale != 1, data space.
"""

from __future__ import annotations

import math

import pytest
import torch

import dgflow
from dgflow import refine
from dgflow.priors import make_prior
from dgflow.ratio import DensityRatio
from dgflow.refiners import DDLS
from dgflow.rng import SampleNoise
from dgflow.target import Target
from dgflow.tuning import MALA_ACCEPTANCE

import misuse
from conftest import AffineGaussianCase
from fidelity_models import B, LATENT, SEED, Critic, Generator, fixed_latents, logit_and_grad, report
from gaussian_laws import assert_gaussian
from misuse import Z


# -------------------------------------------------------------------------------------- closed form


def test_ddls_mala_converges_to_latent_target(gauss_case: AffineGaussianCase):
    """The latent target p_Z(z) exp(d(g(z))) / Z is N(A^{-1}(m - b), s^2 (A^T A)^{-1}) here
    (p_Z(z) / p_g(g(z)) = |det A| is constant), and g(z) ~ mu.

    Mixing: Langevin on a Gaussian with precision P contracts each eigendirection by
    |1 - eps * lambda / 2| per step; lambda_min(P) = sigma_min(A)^2 / s^2 >= 1.7 here, so with
    eps = 0.2 a step contracts by <= 0.83 and 100 steps leave a bias < 1e-7 (MALA's
    rejections, ~5% here, slow this only slightly). Chains are independent, so i.i.d.
    standard errors apply.
    """
    c = gauss_case
    res = dgflow.refine(c.generator, c.discriminator, n=2000, latent_shape=(2,), method="ddls",
                        metropolis=True, eps=0.2, steps=100, progress=False, seed=0, save_interval=None)
    rate = res.info["acceptance_rate"]
    assert 0 < rate <= 1
    assert_gaussian(res.z.double().numpy(), c.latent_target_mean, c.latent_target_cov)
    assert_gaussian(res.x.double().numpy(), c.mu_mean, c.mu_cov)
    torch.testing.assert_close(c.generator(res.z), res.x)
    torch.testing.assert_close(c.discriminator(res.x), res.logits)


def test_ddls_acceptance_rate_bounds(identity_case: AffineGaussianCase):
    c = identity_case
    common = dict(n=64, latent_shape=(2,), method="ddls", progress=False, steps=20, save_interval=None)
    plain = dgflow.refine(c.generator, c.discriminator, eps=0.2, **common)
    assert plain.info["acceptance_rate"] == 1.0  # unadjusted Langevin accepts every move
    huge = dgflow.refine(c.generator, c.discriminator, eps=50.0, metropolis=True, **common)
    small = dgflow.refine(c.generator, c.discriminator, eps=0.05, metropolis=True, **common)
    # eps = 50 proposes noise of scale sqrt(50) = 7 (ten target standard deviations) plus a drift
    # of 25 * score: almost all rejected; eps = 0.05: MALA acceptance is 1 - O(eps^{3/2}) on a smooth Gaussian target.
    assert 0 <= huge.info["acceptance_rate"] < 0.2
    assert 0.8 < small.info["acceptance_rate"] <= 1.0


# ------------------------------------------------------------------ fidelity to the authors' update


def ddls_transcription(G, D, z, eps, steps, decay, noise, metropolis=False):
    """Che et al.: E(z) = |z|^2/2 - d(g(z)); z' = z - (eps/2) grad E + sqrt(eps) xi; MALA: accept with
    min(1, exp(E(z) - E(z')) q(z | z') / q(z' | z)), q(a | b) = N(a; b - (eps/2) grad E(b), eps I)."""

    def energy_and_grad(z):
        d, g = logit_and_grad(G, D, z)
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
    G, D, z0 = Generator(), Critic(), fixed_latents()
    eps = 1.0 if metropolis else 0.01  # a large step so that MALA rejects some proposals
    res = refine(G, D, z=z0, method="ddls", eps=eps, decay=0.97, steps=9, metropolis=metropolis, seed=SEED,
                 save_interval=None, progress=False, batch_size=4)
    ref = ddls_transcription(G, D, z0, eps, 9, 0.97, SampleNoise(SEED, torch.arange(B)), metropolis)
    diff = float((res.z - ref).abs().max())
    report(f"DDLS metropolis={metropolis}", diff)
    assert diff < 1e-12
    if metropolis:
        assert 0 < res.info["acceptance_rate"] < 1


# ----------------------------------------------------------------------- the step's Metropolis test


def test_ddls_step_reports_its_metropolis_test(identity_case):
    prior = make_prior("normal", (2,))
    target = Target(identity_case.generator, DensityRatio(identity_case.discriminator), prior)
    noise = SampleNoise(0, torch.arange(256))
    z = prior.draw(noise)
    mala = DDLS(eps=1.0, steps=2, metropolis=True)
    state = mala.init(target, z)
    new, info = mala.step(target, state, 0, noise)
    assert info.accepted.dtype == torch.bool and 0 < int(info.accepted.sum()) < 256  # eps=1: some rejected
    moved = (new.z != state.z).any(1)
    assert torch.equal(moved, info.accepted)  # a rejected proposal leaves the sample where it was
    unadjusted = DDLS(eps=1.0, steps=2)
    proposal, plain = unadjusted.step(target, unadjusted.init(target, z), 0, noise)
    assert plain.accepted.all()  # no test: every move is taken
    # the same proposal from the same state: the same Metropolis log ratio, whether or not it is applied
    assert torch.equal(plain.log_acceptance, info.log_acceptance)
    assert torch.equal(new.z[info.accepted], proposal.z[info.accepted])


# --------------------------------------------------------------------------------------- eps="auto"


def test_ddls_eps_is_the_largest_with_mala_acceptance_above_the_optimum(identity_case, monkeypatch):
    res = dgflow.refine(identity_case.generator, identity_case.discriminator, n=8, latent_shape=(2,), method="ddls",
                        eps="auto", steps=30, pilot=512, progress=False, save_interval=None)
    trials = res.info["auto"]["trials"]
    assert trials[-1]["accepted"] and trials[-1]["acceptance"] >= MALA_ACCEPTANCE
    assert all(t["acceptance"] < MALA_ACCEPTANCE for t in trials[:-1])
    assert res.options["eps"] == trials[-1]["size"] and res.options["steps"] == 30
    # the statistic is MALA's acceptance probability: judged on the first step only, it must match the
    # acceptance rate of one Metropolis-adjusted step from other draws of the same starting law
    # (standard errors <= 0.5/sqrt(512) = 0.022 and 0.5/sqrt(4096) = 0.008: 0.07 is > 3 of them)
    monkeypatch.setattr("dgflow.tuning.ACCEPTANCE_STEPS", 1)
    one = dgflow.refine(identity_case.generator, identity_case.discriminator, n=2, latent_shape=(2,), method="ddls",
                        eps="auto", steps=30, pilot=512, progress=False, save_interval=None).info["auto"]["trials"]
    for t in one[-2:]:
        mala = dgflow.refine(identity_case.generator, identity_case.discriminator, n=4096, latent_shape=(2,),
                             method="ddls", eps=t["size"], steps=1, metropolis=True, progress=False,
                             save_interval=None, sample_ids=torch.arange(4096) + 10_000, batch_size=4096)
        assert mala.info["acceptance_rate"] == pytest.approx(t["acceptance"], abs=0.07)


def test_ddls_pilot_acceptance_is_that_of_the_proposals_with_or_without_metropolis(identity_case, monkeypatch):
    """The pilot judges eps by the Metropolis acceptance of its Langevin proposals (the steps' info), so with
    metropolis=True, where rejected proposals leave their samples in place, the statistic is the same on the
    first step (the same proposals from the same starts), not inflated by counting rejections as moves."""
    monkeypatch.setattr("dgflow.tuning.ACCEPTANCE_STEPS", 1)
    trials = [dgflow.refine(identity_case.generator, identity_case.discriminator, n=2, latent_shape=(2,),
                            method="ddls", eps="auto", steps=5, pilot=256, metropolis=metropolis, progress=False,
                            save_interval=None).info["auto"]["trials"] for metropolis in (False, True)]
    assert [t["acceptance"] for t in trials[0]] == [t["acceptance"] for t in trials[1]]
    assert trials[0][0]["acceptance"] < 0.9  # some proposals of the first candidate (eps=1) are rejected


# ------------------------------------------------------------------------------------ option errors


def test_metropolis_requires_unit_noise_scale():
    with pytest.raises(ValueError, match=r"metropolis=True needs noise_scale=1.*got noise_scale=0.5"):
        misuse.refine(z=Z, method="ddls", metropolis=True, noise_scale=0.5)


def test_ddls_in_data_space():
    with pytest.raises(ValueError, match=r"DDLS runs in latent space only.*space='latent'"):
        misuse.refine(z=Z, method="ddls", space="data")
