"""The 2-D MLPs of the DGflow paper: generator 2-256-256-256-2, discriminator 2-512-512-512-1, leaky ReLU.

The trained pairs that ship with dgflow load with :func:`dgflow.zoo.toy.load_toy`.
"""

from __future__ import annotations

from torch import Tensor, nn


def _mlp(sizes: list[int], slope: float) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i, (a, b) in enumerate(zip(sizes[:-1], sizes[1:])):
        layers.append(nn.Linear(a, b))
        if i < len(sizes) - 2:
            layers.append(nn.LeakyReLU(slope, inplace=True))  # on the Linear's own output: same values, one pass less
    return nn.Sequential(*layers)


class MLPGenerator(nn.Module):
    """The 2-D generator: an MLP ``z_dim``-256-256-256-``out_dim`` with leaky ReLU (the paper's defaults)."""

    def __init__(self, z_dim: int = 2, hidden: int = 256, depth: int = 3, out_dim: int = 2, slope: float = 0.2):
        super().__init__()
        self.z_dim = z_dim
        self.net = _mlp([z_dim] + [hidden] * depth + [out_dim], slope)

    def forward(self, z: Tensor) -> Tensor:
        return self.net(z)


class MLPDiscriminator(nn.Module):
    """Returns one logit (critic value) per sample, shaped ``[B]``."""

    def __init__(self, in_dim: int = 2, hidden: int = 512, depth: int = 3, slope: float = 0.2):
        super().__init__()
        self.net = _mlp([in_dim] + [hidden] * depth + [1], slope)

    def forward(self, x: Tensor) -> Tensor:
        return self.net(x)[:, 0]
