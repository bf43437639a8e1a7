"""OCF-GAN (Ansari, Scarlett & Soh, CVPR 2020): an MMD-GAN-style pair trained on the (optimised)
characteristic-function distance between the critic's features of real and generated images.

    generator:  the DCGAN generator of :mod:`.dcgan` (``z [B, z_dim] -> x [B, C, H, W]``)
    critic:     the MMD-GAN encoder of :mod:`.mmd` (``x -> f [B, k]``) and a learned frequency scale sigma
    distance:   CFD^2(P, Q) = E_{t ~ omega}[ |phi_P(t) - phi_Q(t)|^2 ],   phi_P(t) = E_{f ~ P}[exp(i t.f)]
                estimated with the empirical characteristic functions of the two feature batches at
                ``num_frequencies`` frequencies t_1..t_m drawn from omega = N(0, sigma^2 I_k):
                CFD^2 ~ 1/m sum_j [ (mean_r cos(t_j.f_r) - mean_g cos(t_j.f_g))^2
                                   + (mean_r sin(t_j.f_r) - mean_g sin(t_j.f_g))^2 ]

The generator minimises and the critic maximises CFD^2 over its features *and* sigma ("optimised"
CF: the frequency distribution's scale is learned; Ansari et al.'s Gaussian weighting). sigma is kept
out of weight clipping (``unclipped_parameters``). Like the MMD-GAN critic, the OCF critic is an
encoder, not a density-ratio logit: refine an OCF-GAN through the density-ratio corrector.
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from ..checks import check_int
from .mmd import MMDCritic, MMDGenerator


class OCFGenerator(MMDGenerator):
    """OCF-GAN generator: the DCGAN generator (deconvs + BatchNorm, bottom width 4, tanh)."""


class OCFCritic(MMDCritic):
    """Critic ``x -> f [B, feature_dim]`` with a learned scale ``sigma`` of the frequency distribution N(0, sigma^2 I)."""

    unclipped_parameters = ("log_sigma",)

    def __init__(self, *, channels: int = 3, image_size: int = 32, width: int = 64, feature_dim: int = 100,
                 num_frequencies: int = 8, sigma: float = 1.0):
        super().__init__(channels=channels, image_size=image_size, width=width, feature_dim=feature_dim)
        check_int("num_frequencies", num_frequencies, 1)
        if not sigma > 0:
            raise ValueError(f"sigma (the frequency distribution's initial scale) must be > 0, got {sigma!r}")
        self.num_frequencies = num_frequencies
        self.log_sigma = nn.Parameter(torch.tensor(math.log(sigma)))

    def frequencies(self, generator: torch.Generator | None = None) -> Tensor:
        """Fresh frequencies ``t = sigma * eps``, ``eps ~ N(0, I)``, shaped ``[num_frequencies, feature_dim]``."""
        eps = torch.randn(self.num_frequencies, self.feature_dim, generator=generator)
        return eps.to(self.log_sigma.device) * self.log_sigma.exp()


def ocf_distance(real_feats: Tensor, fake_feats: Tensor, frequencies: Tensor) -> Tensor:
    """Squared empirical characteristic-function distance ``1/m sum_j |phi_real(t_j) - phi_fake(t_j)|^2``.

    ``real_feats [N, k]``, ``fake_feats [M, k]``, ``frequencies [m, k]``; always >= 0.
    """
    if (real_feats.ndim != 2 or fake_feats.ndim != 2 or frequencies.ndim != 2
            or not real_feats.shape[1] == fake_feats.shape[1] == frequencies.shape[1]):
        raise ValueError(f"ocf_distance takes features [N, k], [M, k] and frequencies [m, k], got "
                         f"{tuple(real_feats.shape)}, {tuple(fake_feats.shape)} and {tuple(frequencies.shape)}")
    real_phase, fake_phase = real_feats @ frequencies.T, fake_feats @ frequencies.T  # [N, m], [M, m]
    d_cos = real_phase.cos().mean(0) - fake_phase.cos().mean(0)
    d_sin = real_phase.sin().mean(0) - fake_phase.sin().mean(0)
    return (d_cos**2 + d_sin**2).mean()
