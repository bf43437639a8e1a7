"""The density-ratio corrector learns log(p_phi / p_theta) and leaves D_phi untouched."""

from __future__ import annotations

import torch
from torch import nn

import dgflow
from dgflow.training.corrector import train_corrector


def test_corrector_learns_the_log_ratio_between_two_generators():
    # g_phi = N(0, 1), g_theta = N(0.5, 1): log p_phi/p_theta (x) = -0.5 x + 0.125 exactly, a
    # logistic-regression optimum that a linear D_lambda can represent.
    torch.manual_seed(0)
    d_phi = nn.Linear(1, 1)
    before = [p.detach().clone() for p in d_phi.parameters()]
    gen = torch.Generator().manual_seed(1)
    corr, log = train_corrector(d_phi, lambda n: torch.randn(n, 1, generator=gen),
                                lambda n: 0.5 + torch.randn(n, 1, generator=gen),
                                iterations=1500, batch_size=512, lr=0.01, progress=False)
    slope, intercept = corr.weight.item(), corr.bias.item()
    # Each fresh batch of 1024 points gives a gradient whose noise moves Adam (lr 0.01) by
    # ~0.01 per step around the optimum; 0.05 is 5 such steps.
    assert abs(slope + 0.5) < 0.05 and abs(intercept - 0.125) < 0.05, (slope, intercept)
    assert log[-1]["loss"] < 2 * torch.log(torch.tensor(2.0)).item()  # better than chance
    for p, q in zip(before, d_phi.parameters()):
        assert torch.equal(p, q)  # D_phi is copied, not trained


def test_corrector_plugs_into_refine_as_an_extra_logit_term():
    d_phi = lambda x: -x[:, 0]  # noqa: E731
    d_lambda = lambda x: 2 * x[:, 0]  # noqa: E731
    z = torch.zeros(4, 1)
    res = dgflow.refine(lambda z: z, d_phi, z, corrector=d_lambda, eta=0.1, gamma=0.0, steps=1, progress=False)
    # the summed logit is +x, so one KL step moves every sample by eta * 1
    torch.testing.assert_close(res.z, torch.full((4, 1), 0.1))
