"""A convolutional VAE whose decoder is a generator ``g(z)`` on ``z ~ N(0, I)``.

    encoder:  x [B, C, 32, 32] -> conv4x4/2 w, conv4x4/2 2w, conv4x4/2 4w (each + LeakyReLU 0.2)
              -> flatten [4w*4*4] -> linear -> (mu, logvar) [B, z_dim] each
    decoder:  z [B, z_dim] -> linear -> [4w, 4, 4] -> ReLU
              -> deconv4x4/2 2w, deconv4x4/2 w (each + ReLU), deconv4x4/2 C -> tanh   x [B, C, 32, 32]

Likelihood: Gaussian ``p(x|z) = N(x; decode(z), sigma^2 I)`` with one learned ``log_sigma``
(the "sigma-VAE" of Rybkin et al., 2021), a density on continuous images in ``[-1, 1]``;
``decode(z)`` is the mean, and ``forward(z) = decode(z)`` (no pixel noise) is the generator that
refinement moves. ``loss(x)`` is the negative ELBO in nats per image, averaged over the batch:
``-E_q[log p(x|z)] + KL(q(z|x) || N(0, I))`` with one reparameterised sample.
No BatchNorm, so the loss is the same in train and eval mode. MNIST (28x28) is padded / cropped
around the 32x32 networks (see :mod:`.images`).
"""

from __future__ import annotations

import math

import torch
from torch import Tensor, nn

from .images import check_image_config, check_images, check_latents, crop_to, pad_to_32


class ConvVAE(nn.Module):
    """Conv encoder -> (mu, logvar); DCGAN-style decoder with tanh mean; Gaussian likelihood, learned sigma."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, z_dim: int = 128, width: int = 64,
                 init_log_sigma: float = -1.0):
        super().__init__()
        check_image_config(channels, image_size, z_dim=z_dim, width=width)
        self.channels, self.image_size, self.z_dim, self.width = channels, image_size, z_dim, width
        w = width
        self.encoder = nn.Sequential(
            nn.Conv2d(channels, w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Conv2d(w, 2 * w, 4, 2, 1), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * w, 4 * w, 4, 2, 1), nn.LeakyReLU(0.2), nn.Flatten(), nn.Linear(4 * w * 16, 2 * z_dim))
        self.decoder_input = nn.Linear(z_dim, 4 * w * 16)
        self.decoder = nn.Sequential(
            nn.ReLU(), nn.ConvTranspose2d(4 * w, 2 * w, 4, 2, 1), nn.ReLU(), nn.ConvTranspose2d(2 * w, w, 4, 2, 1),
            nn.ReLU(), nn.ConvTranspose2d(w, channels, 4, 2, 1), nn.Tanh())
        self.log_sigma = nn.Parameter(torch.tensor(float(init_log_sigma)))

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """``q(z|x) = N(mu, diag(exp(logvar)))``; returns ``(mu, logvar)``, each ``[B, z_dim]``."""
        check_images(x, self.channels, self.image_size, type(self).__name__)
        mu, logvar = self.encoder(pad_to_32(x)).chunk(2, dim=1)
        return mu, logvar

    def decode(self, z: Tensor) -> Tensor:
        """Mean of ``p(x|z)``: ``[B, z_dim] -> [B, C, H, W]`` in ``[-1, 1]``."""
        check_latents(z, self.z_dim, type(self).__name__)
        h = self.decoder_input(z).view(len(z), 4 * self.width, 4, 4)
        return crop_to(self.decoder(h), self.image_size)

    def forward(self, z: Tensor) -> Tensor:
        return self.decode(z)

    def loss(self, x: Tensor) -> Tensor:
        """Negative ELBO (nats per image, batch mean) with the Gaussian likelihood of learned ``sigma``."""
        mu, logvar = self.encode(x)
        z = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        mean = self.decode(z)
        d = mean[0].numel()
        nll = (0.5 * ((x - mean) / self.log_sigma.exp()) ** 2).flatten(1).sum(1) \
            + d * (self.log_sigma + 0.5 * math.log(2 * math.pi))
        kl = 0.5 * (mu**2 + logvar.exp() - 1 - logvar).sum(1)
        return (nll + kl).mean()
