"""DOT (Tanaka, discriminator optimal transport): every test about this one method.

* fidelity: latent SGD and data-space Adam with bounds against the update of the authors' code,
  and k_eff as the reference demo estimates it (networks of fidelity_models.py). One deliberate
  deviation is pinned: the exact radial projection (the reference divides by a hard-coded 11.31).
* lr="auto" records its choice.
* option errors: optimizer, an unestimable k_eff, bounds, k_eff_rounds (and, in the same test, the
  sample config's dg_clip).

DOT has no closed-form test: it transports each sample deterministically rather than sampling a
known law, so it is pinned by fidelity.
"""

from __future__ import annotations

import pytest
import torch

import dgflow
from dgflow import refine
from dgflow.refiners.dot import DOT
from dgflow.target import Target

import misuse
from fidelity_models import DATA, Critic, Generator, fixed_latents, report
from misuse import Z


# ------------------------------------------------------------------ fidelity to the authors' update


def dot_h(D_of, pos, start, k_eff, delta=0.001):
    """Tanaka's H(z) = -d(g(z)) / k_eff + || z - z_y + delta ||_2, summed over the batch."""
    return (-D_of(pos) / k_eff + (pos - start + delta).flatten(1).norm(dim=1)).sum()


def test_dot_latent_sgd_matches_the_update_with_an_exact_radial_projection():
    G, D, z0 = Generator(), Critic(), fixed_latents()
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
    G, D, z0 = Generator(amplitude=2.5), Critic(tilt=4.0), fixed_latents()
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


# ---------------------------------------------------------------------------------------- lr="auto"


def test_dot_lr_auto_records_its_choice(identity_case):
    mu = identity_case.m + identity_case.s * torch.randn(300, 2, generator=torch.Generator().manual_seed(1)).numpy()
    res = dgflow.refine(identity_case.generator, identity_case.discriminator, n=8, latent_shape=(2,), method="dot",
                        lr="auto", steps="auto", heldout=torch.tensor(mu, dtype=torch.float32), pilot=128, max_steps=40,
                        progress=False, save_interval=None)
    auto = res.info["auto"]
    assert auto["stop_rule"] == "distance" and auto["trials"][-1]["distance"]
    assert res.options["lr"] == auto["chosen"]["lr"] and res.options["steps"] == auto["chosen"]["steps"] <= 40
    assert "k_eff" in res.info and auto["step_option"] == "lr"


# ------------------------------------------------------------------------------------ option errors


def test_dot_options():
    with pytest.raises(ValueError, match=r"DOT optimizer must be 'sgd' or 'adam', got 'rmsprop'"):
        misuse.refine(z=Z, method="dot", optimizer="rmsprop")
    with pytest.raises(ValueError, match="could not estimate k_eff.*pass k_eff"):
        misuse.refine(z=Z, method="dot", d=lambda x: 0.0 * x.sum(1))


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
