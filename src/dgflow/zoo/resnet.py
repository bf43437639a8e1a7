"""The CIFAR-10 ResNet SN-GAN of Miyato et al. (2018, table 4 / appendix B.4).

    generator:      z [B, z_dim] -> linear -> [wg, 4, 4] -> 3 x UpBlock(wg)        (4 -> 8 -> 16 -> 32)
                    -> BN, ReLU, conv 3x3 -> C, tanh                                 x [B, C, 32, 32]
    UpBlock(c):     h + main, main = conv3x3(ReLU(BN(conv3x3(up(ReLU(BN(h))))))), shortcut conv1x1(up(h))
    discriminator:  x -> OptimizedBlock(wd, down) -> DownBlock(wd, down) -> Block(wd) -> Block(wd)
                    -> ReLU -> global sum pooling -> linear -> d [B]              (32 -> 16 -> 8 -> 8 -> 8)
    DownBlock(c):   avgpool(conv3x3(ReLU(conv3x3(ReLU(h))))) + avgpool(conv1x1(h)); Block: no pooling,
                    identity shortcut; OptimizedBlock (first): no ReLU before the first conv,
                    shortcut conv1x1(avgpool(x)).

``up`` is nearest-neighbour x2 upsampling. Every conv and the linear layer of the discriminator
are spectrally normalised; the generator uses BatchNorm. ``width`` is ``wg`` (256 in the paper)
for the generator and ``wd`` (128) for the discriminator; small values are for CPU tests. MNIST goes through the
32x32 networks by cropping / padding (see :mod:`.images`).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from .images import check_image_config, check_images, check_latents, crop_to, maybe_sn, pad_to_32


class UpBlock(nn.Module):
    """Generator residual block with x2 nearest upsampling and a 1x1-conv shortcut."""

    def __init__(self, a: int, b: int):
        super().__init__()
        self.bn1, self.conv1 = nn.BatchNorm2d(a), nn.Conv2d(a, b, 3, 1, 1)
        self.bn2, self.conv2 = nn.BatchNorm2d(b), nn.Conv2d(b, b, 3, 1, 1)
        self.shortcut = nn.Conv2d(a, b, 1)

    def forward(self, h: Tensor) -> Tensor:
        up = F.interpolate(F.relu(self.bn1(h)), scale_factor=2, mode="nearest")
        main = self.conv2(F.relu(self.bn2(self.conv1(up))))
        return main + self.shortcut(F.interpolate(h, scale_factor=2, mode="nearest"))


class DownBlock(nn.Module):
    """Discriminator residual block (spectral norm), optionally with 2x2 average-pool downsampling."""

    def __init__(self, a: int, b: int, down: bool, first: bool = False):
        super().__init__()
        self.down, self.first = down, first
        self.conv1 = maybe_sn(nn.Conv2d(a, b, 3, 1, 1), True)
        self.conv2 = maybe_sn(nn.Conv2d(b, b, 3, 1, 1), True)
        self.shortcut = maybe_sn(nn.Conv2d(a, b, 1), True) if (down or a != b) else None

    def forward(self, h: Tensor) -> Tensor:
        main = self.conv2(F.relu(self.conv1(h if self.first else F.relu(h))))
        if self.down:
            main = F.avg_pool2d(main, 2)
        if self.shortcut is None:
            return main + h
        if self.first:  # optimized block: pool before the 1x1 conv
            return main + self.shortcut(F.avg_pool2d(h, 2))
        skip = self.shortcut(h)
        return main + (F.avg_pool2d(skip, 2) if self.down else skip)


class ResNetGenerator(nn.Module):
    """ResNet SN-GAN generator: ``z [B, z_dim] -> x [B, C, H, W]`` in ``[-1, 1]`` (3 upsampling residual blocks)."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, z_dim: int = 128, width: int = 256):
        super().__init__()
        check_image_config(channels, image_size, z_dim=z_dim, width=width)
        self.channels, self.image_size, self.z_dim, self.width = channels, image_size, z_dim, width
        self.input = nn.Linear(z_dim, width * 4 * 4)
        self.blocks = nn.Sequential(UpBlock(width, width), UpBlock(width, width), UpBlock(width, width))
        self.output = nn.Sequential(nn.BatchNorm2d(width), nn.ReLU(), nn.Conv2d(width, channels, 3, 1, 1), nn.Tanh())

    def forward(self, z: Tensor) -> Tensor:
        check_latents(z, self.z_dim, type(self).__name__)
        h = self.input(z).view(len(z), self.width, 4, 4)
        return crop_to(self.output(self.blocks(h)), self.image_size)


class ResNetDiscriminator(nn.Module):
    """ResNet SN-GAN discriminator: 4 residual blocks (2 downsampling), ReLU, sum pooling, linear; ``d [B]``."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, width: int = 128):
        super().__init__()
        check_image_config(channels, image_size, width=width)
        self.channels, self.image_size, self.width = channels, image_size, width
        self.blocks = nn.Sequential(DownBlock(channels, width, down=True, first=True),
                                    DownBlock(width, width, down=True),
                                    DownBlock(width, width, down=False), DownBlock(width, width, down=False))
        self.output = maybe_sn(nn.Linear(width, 1), True)

    def forward(self, x: Tensor) -> Tensor:
        check_images(x, self.channels, self.image_size, type(self).__name__)
        h = F.relu(self.blocks(pad_to_32(x))).sum(dim=(2, 3))
        return self.output(h)[:, 0]
