"""Closed-form laws shared by several methods (each method's own closed-form cases are in tests/methods).

d = 0 means p_g = mu: then both selectors, DRS (exact mode) and MH-GAN, accept every proposal.
"""

from __future__ import annotations

import torch

import dgflow


def _zero_logit(x):
    return 0.0 * x.sum(1)


def test_selectors_accept_everything_when_p_g_equals_mu():
    """d = 0 means p_g = mu: DRS (exact) accepts with exp(d - d_M) = 1 and every MH-GAN ratio
    exp(d' - d) = 1, so every proposal is accepted and the reported rates are exactly 1."""
    drs = dgflow.select(lambda z: z, _zero_logit, 50, method="drs", latent_shape=(2,), percentile=None,
                        burn_in=100, progress=False)
    assert drs.acceptance_rate == 1.0 and drs.n_proposals == 50
    for real in (torch.zeros(10, 2), None):
        mh = dgflow.select(lambda z: z, _zero_logit, 50, method="mhgan", latent_shape=(2,), calibration=None,
                           chain_length=5, real=real, progress=False)
        # every chain ends at its last proposal
        last = dgflow.NormalPrior((2,)).draw(dgflow.SampleNoise(0, torch.arange(50)), step=4, stream="mhgan")
        assert torch.equal(mh.z, last)
        assert mh.acceptance_rate == 1.0, f"real={'given' if real is not None else None}: {mh.acceptance_rate}"
