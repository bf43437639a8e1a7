"""MMD-GAN (Li et al., 2017): a DCGAN generator and a vector-valued critic, trained on kernel MMD.

    generator:  the DCGAN generator of :mod:`.dcgan` (``z [B, z_dim] -> x [B, C, H, W]``)
    critic:     x [B, C, 32, 32] -> conv4x4/2 w, LeakyReLU 0.2
                -> conv4x4/2 2w, BN, LeakyReLU -> conv4x4/2 4w, BN, LeakyReLU
                -> conv4x4 (valid) -> f [B, k]                                   (32 -> 16 -> 8 -> 4 -> 1)
    loss:       MMD^2(f(real), f(fake)) with the mixture of RBF kernels
                k(a, b) = sum_sigma exp(-|a - b|^2 / (2 sigma^2)),  sigmas (1, 2, 4, 8, 16)

The generator minimises and the critic maximises ``mmd_loss`` (Li et al. also clip the critic's
weights and add an autoencoder term; those are training choices and not part of this module).
The critic is an encoder, not a density-ratio logit: refine an MMD-GAN through the density-ratio
corrector (``dgflow.refine(g, D_phi, z, corrector=D_lambda)``). ``feature_dim`` is ``k``
(100 in Li et al.'s code). MNIST (28x28) is padded / cropped around the 32x32 networks.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor, nn

from .dcgan import DCGANGenerator
from .images import check_image_config, check_images, pad_to_32


class MMDGenerator(DCGANGenerator):
    """MMD-GAN generator: the DCGAN generator (deconvs + BatchNorm, bottom width 4, tanh)."""


class MMDCritic(nn.Module):
    """Vector-valued MMD-GAN critic (DCGAN encoder): ``x [B, C, H, W] -> f [B, feature_dim]``."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, width: int = 64, feature_dim: int = 100):
        super().__init__()
        check_image_config(channels, image_size, width=width, feature_dim=feature_dim)
        self.channels, self.image_size, self.width, self.feature_dim = channels, image_size, width, feature_dim
        w = width
        self.net = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(w, 2 * w, 4, 2, 1), nn.BatchNorm2d(2 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.BatchNorm2d(4 * w), nn.LeakyReLU(0.2),
            nn.Conv2d(4 * w, feature_dim, 4, 1, 0), nn.Flatten())

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.channels, self.image_size, type(self).__name__)
        return self.net(pad_to_32(x))


def mmd_loss(real_feats: Tensor, fake_feats: Tensor, sigmas: Sequence[float] = (1.0, 2.0, 4.0, 8.0, 16.0),
             biased: bool = True) -> Tensor:
    """Squared MMD between two feature batches ``[N, k]`` and ``[M, k]`` with a mixture of RBF kernels.

    ``biased=True`` (Li et al.'s choice) keeps the diagonal terms (V-statistic, always >= 0);
    ``biased=False`` gives the unbiased U-statistic.
    """
    if real_feats.ndim != 2 or fake_feats.ndim != 2 or real_feats.shape[1] != fake_feats.shape[1]:
        raise ValueError(f"mmd_loss takes feature batches [N, k] and [M, k], got {tuple(real_feats.shape)} and "
                         f"{tuple(fake_feats.shape)}")
    if not sigmas or any(s <= 0 for s in sigmas):
        raise ValueError(f"sigmas must be a non-empty list of positive bandwidths, got {sigmas!r}")
    n, m = len(real_feats), len(fake_feats)
    if not biased and min(n, m) < 2:
        raise ValueError("the unbiased MMD estimate needs at least 2 samples per batch")
    both = torch.cat([real_feats, fake_feats])
    sq = torch.cdist(both, both).pow(2)
    k = sum(torch.exp(-sq / (2 * s * s)) for s in sigmas)
    kxx, kyy, kxy = k[:n, :n], k[n:, n:], k[:n, n:]
    if biased:
        return kxx.mean() + kyy.mean() - 2 * kxy.mean()
    return ((kxx.sum() - kxx.diagonal().sum()) / (n * (n - 1)) + (kyy.sum() - kyy.diagonal().sum()) / (m * (m - 1))
            - 2 * kxy.mean())
