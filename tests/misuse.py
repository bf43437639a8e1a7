"""A small valid problem that the misuse tests break one argument of (tests/test_errors.py and the
option-error tests in tests/methods): the identity generator, a smooth logit, six 2-D latents."""

from __future__ import annotations

import torch

import dgflow


def g_id(z):
    return z


def d_ok(x):
    return -(x.flatten(1) ** 2).sum(1)


Z = torch.zeros(6, 2)


def refine(**kw):
    base = dict(progress=False, steps=2)
    base.update(kw)
    g = base.pop("g", g_id)
    d = base.pop("d", d_ok)
    return dgflow.refine(g, d, **base)
