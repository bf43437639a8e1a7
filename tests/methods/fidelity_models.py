"""Tiny fixed float64 networks and noise helpers shared by the methods' fidelity tests.

Each method file in tests/methods pins its method to a small hand-written transcription of the
authors' update (written from the papers' algorithm boxes as restated in docs/methods.md, no code
taken from the reference repositories). The transcriptions run on these networks with the same
noise dgflow draws (its per-sample streams ``SampleNoise(SEED, ids)``), so the comparisons are at
float tolerance (the selectors' to the exact selection). The README's "Fidelity to the reference implementations" table quotes the
differences measured (``python -m pytest tests/methods -s`` prints them).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from dgflow import NormalPrior, SampleNoise

SEED = 3


# ----------------------------------------------- refiners and the EDM sampler (latents 3 -> data 2)


B, LATENT, DATA = 6, 3, 2


def mlp(n_in: int, n_out: int, seed: int, scale: float = 1.0) -> nn.Module:
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
        self.net, self.amplitude = mlp(LATENT, DATA, 0), amplitude

    def forward(self, z):
        return self.amplitude * torch.tanh(self.net(z))


class Critic(nn.Module):
    """``d(x)``: a small MLP plus ``tilt . x`` (the tilt pushes DOT towards the box's corner)."""

    def __init__(self, tilt: float = 0.0):
        super().__init__()
        self.net, self.tilt = mlp(DATA, 1, 1), tilt

    def forward(self, x):
        return self.net(x).squeeze(1) + self.tilt * x.sum(1)


def fixed_latents() -> torch.Tensor:
    torch.manual_seed(11)
    return torch.randn(B, LATENT, dtype=torch.float64)


def logit_and_grad(G, D, z):
    z = z.detach().requires_grad_(True)
    d = D(G(z))
    (g,) = torch.autograd.grad(d.sum(), z)
    return d.detach(), g


def report(name: str, diff: float) -> None:
    print(f"\nfidelity {name}: max abs difference {diff:.3g}")


# ------------------------------------------------------------------ selectors (DRS, MH-GAN): 2 -> 2


class TinyGenerator(nn.Module):
    """2 -> 8 -> 2 MLP with fixed weights, computed in float64."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 2)).double()

    def forward(self, z):
        return self.net(z.double())


class TinyDiscriminator(nn.Module):
    """2 -> 8 -> 1 MLP with fixed weights, computed in float64 (logits within about +-6)."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(1)
        self.net = nn.Sequential(nn.Linear(2, 8), nn.Tanh(), nn.Linear(8, 1)).double()

    def forward(self, x):
        return 6.0 * self.net(x.double()).squeeze(1)


G, D = TinyGenerator(), TinyDiscriminator()  # the selectors' fixed generator and discriminator


def latents(stream, ids, step):
    return NormalPrior((2,)).draw(SampleNoise(SEED, ids), step=step, stream=stream)


def logit(z):
    with torch.no_grad():
        return D(G(z)).numpy()


def logit_x(x):
    with torch.no_grad():
        return D(x).numpy()


def uniforms(stream, ids, steps):
    """``[len(ids), steps]`` float64 uniforms of a keyed stream."""
    return np.stack([SampleNoise(SEED, ids).uniform(step=k, stream=stream, dtype=torch.float64).numpy()
                     for k in range(steps)], 1)


def sigmoid(d):
    return 1.0 / (1.0 + np.exp(-d))
