"""The "standard CNN" GAN of Miyato et al. (2018, table 3): DCGAN generator, 7-conv discriminator.

    generator:      z [B, z_dim] -> linear -> [8w, 4, 4] -> BN, ReLU
                    -> 3 x (deconv 4x4 stride 2, BN, ReLU): 8w -> 4w -> 2w -> w   (4 -> 8 -> 16 -> 32)
                    -> conv 3x3 -> C, tanh                                          x [B, C, 32, 32]
    discriminator:  x [B, C, 32, 32] -> conv3x3 w, conv4x4/2 w, conv3x3 2w, conv4x4/2 2w,
                    conv3x3 4w, conv4x4/2 4w, conv3x3 8w (each + LeakyReLU 0.2)
                    -> flatten [8w*4*4] -> linear -> d [B]

``w`` is ``width`` (64 in the paper; small values for CPU tests). The SN-DCGAN discriminator has
spectral norm on every conv and the linear layer; its logit is used for both the hinge and the
non-saturating loss (the loss is a training choice, not an architecture). The WGAN-GP critic is
the same body with neither spectral norm nor BatchNorm (the gradient penalty is per sample).
MNIST (28x28) goes through the 32x32 networks by cropping / padding (see :mod:`.images`); STL-10
at 48x48 (Miyato et al.'s setting) uses the same layers one size up: bottom 6x6, ``8w*6*6`` features.

Class-conditional versions (MNIST in the paper's experiments, ``n_classes=10``):
``g(z, y)`` feeds ``[z, embed(y)]`` to the generator; ``d(x, y)`` is a projection discriminator
(Miyato & Koyama, 2018): ``d(x, y) = linear(phi(x)) + <embed_sn(y), phi(x)>`` with ``phi`` the
SN-DCGAN body and a spectrally normalised class embedding.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from .images import WITH_STL10, check_image_config, check_images, check_latents, crop_to, maybe_sn, network_size, pad_to_32


def _check_labels(y: Tensor, batch: int, n_classes: int, who: str) -> None:
    if y.shape != (batch,) or y.dtype not in (torch.long, torch.int32):
        raise ValueError(f"{who} takes class labels as an integer tensor shaped [{batch}], got "
                         f"{y.dtype} {tuple(y.shape)}")
    if len(y) and (int(y.min()) < 0 or int(y.max()) >= n_classes):
        raise ValueError(f"{who} has n_classes={n_classes}; labels must lie in [0, {n_classes - 1}]")


class DCGANGenerator(nn.Module):
    """DCGAN generator: ``z [B, z_dim] -> x [B, C, H, W]`` in ``[-1, 1]`` (deconvs + BatchNorm, bottom width 4)."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, z_dim: int = 128, width: int = 64):
        super().__init__()
        check_image_config(channels, image_size, WITH_STL10, z_dim=z_dim, width=width)
        self.channels, self.image_size, self.z_dim, self.width = channels, image_size, z_dim, width
        self.bottom = network_size(image_size) // 8
        self.input = nn.Linear(z_dim, 8 * width * self.bottom**2)
        self.body = nn.Sequential(
            nn.BatchNorm2d(8 * width), nn.ReLU(),
            *_up(8 * width, 4 * width), *_up(4 * width, 2 * width), *_up(2 * width, width),
            nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        check_latents(z, self.z_dim, type(self).__name__)
        return self._generate(z)

    def _generate(self, h: Tensor) -> Tensor:
        x = self.body(self.input(h).view(len(h), 8 * self.width, self.bottom, self.bottom))
        return crop_to(x, self.image_size)


def _up(a: int, b: int) -> list[nn.Module]:
    return [nn.ConvTranspose2d(a, b, 4, 2, 1), nn.BatchNorm2d(b), nn.ReLU()]


class DCGANBody(nn.Module):
    """The 7-conv discriminator body: ``x [B, C, 32, 32] -> phi [B, 8w*16]``; optional spectral norm."""

    def __init__(self, channels: int, width: int, sn: bool, slope: float = 0.2, image_size: int = 32):
        super().__init__()
        w = width
        plan = [(channels, w, 3, 1), (w, w, 4, 2), (w, 2 * w, 3, 1), (2 * w, 2 * w, 4, 2),
                (2 * w, 4 * w, 3, 1), (4 * w, 4 * w, 4, 2), (4 * w, 8 * w, 3, 1)]
        layers: list[nn.Module] = []
        for a, b, k, s in plan:
            layers += [maybe_sn(nn.Conv2d(a, b, k, s, 1), sn), nn.LeakyReLU(slope)]
        self.net = nn.Sequential(*layers)
        self.out_features = 8 * w * (network_size(image_size) // 8) ** 2

    def forward(self, x: Tensor) -> Tensor:
        return self.net(pad_to_32(x)).flatten(1)


class SNDCGANDiscriminator(nn.Module):
    """SN-DCGAN discriminator: 7 spectrally normalised convs, LeakyReLU 0.2, linear to ``d [B]``."""

    spectral_norm = True

    def __init__(self, *, channels: int = 3, image_size: int = 32, width: int = 64):
        super().__init__()
        check_image_config(channels, image_size, WITH_STL10, width=width)
        self.channels, self.image_size, self.width = channels, image_size, width
        self.body = DCGANBody(channels, width, sn=self.spectral_norm, image_size=image_size)
        self.output = maybe_sn(nn.Linear(self.body.out_features, 1), self.spectral_norm)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.channels, self.image_size, type(self).__name__)
        return self.output(self.body(x))[:, 0]


class WGANGPCritic(SNDCGANDiscriminator):
    """WGAN-GP critic: the SN-DCGAN body without spectral norm (and without BatchNorm); ``d [B]``."""

    spectral_norm = False


class CondDCGANGenerator(DCGANGenerator):
    """Class-conditional DCGAN generator ``g(z, y)``: the DCGAN generator on ``[z, embed(y)]``."""

    def __init__(self, *, channels: int = 1, image_size: int = 28, z_dim: int = 128, width: int = 64,
                 n_classes: int = 10, embed_dim: int = 32):
        check_image_config(channels, image_size, WITH_STL10, z_dim=z_dim, width=width, n_classes=n_classes,
                           embed_dim=embed_dim)
        super().__init__(channels=channels, image_size=image_size, z_dim=z_dim + embed_dim, width=width)
        self.z_dim, self.n_classes, self.embed_dim = z_dim, n_classes, embed_dim
        self.embed = nn.Embedding(n_classes, embed_dim)

    def forward(self, z: Tensor, y: Tensor) -> Tensor:
        check_latents(z, self.z_dim, type(self).__name__)
        _check_labels(y, len(z), self.n_classes, type(self).__name__)
        return self._generate(torch.cat([z, self.embed(y.long())], dim=1))


class CondSNDCGANDiscriminator(nn.Module):
    """Projection discriminator ``d(x, y) = linear(phi(x)) + <embed(y), phi(x)>`` on the SN-DCGAN body; ``[B]``."""

    def __init__(self, *, channels: int = 1, image_size: int = 28, width: int = 64, n_classes: int = 10):
        super().__init__()
        check_image_config(channels, image_size, WITH_STL10, width=width, n_classes=n_classes)
        self.channels, self.image_size, self.width, self.n_classes = channels, image_size, width, n_classes
        self.body = DCGANBody(channels, width, sn=True, image_size=image_size)
        self.output = maybe_sn(nn.Linear(self.body.out_features, 1), True)
        self.embed = maybe_sn(nn.Embedding(n_classes, self.body.out_features), True)

    def forward(self, x: Tensor, y: Tensor) -> Tensor:
        check_images(x, self.channels, self.image_size, type(self).__name__)
        _check_labels(y, len(x), self.n_classes, type(self).__name__)
        phi = self.body(x)
        return self.output(phi)[:, 0] + (self.embed(y.long()) * phi).sum(1)
