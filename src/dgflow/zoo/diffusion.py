"""Small diffusion denoisers and time-dependent discriminators (CPU scale), for 2-D points and MNIST.

Denoisers (EDM-preconditioned, :class:`dgflow.diffusion.EDMPrecond`; ``D(x, sigma, labels)``):

* ``mlp_denoiser``: ``[c_in x, emb(c_noise)] -> width x depth (SiLU) -> dim`` for points.
* ``unet_denoiser``: a two-level U-Net for 28x28 / 32x32 images: residual blocks (GroupNorm,
  SiLU, 3x3 convs) modulated by the noise embedding (scale and shift), average-pool down,
  nearest up, skip connections by concatenation.

Time-dependent discriminators ``d(x, sigma, labels) -> logit`` ``[B]`` (``log(d / (1 - d))``),
all fed ``x / sqrt(sigma^2 + sigma_data^2)`` (unit scale at every noise level) and
``emb(ln(sigma) / 4)``:

* ``mlp_time_discriminator``: MLP for points.
* ``conv_time_discriminator``: three strided conv blocks modulated by the noise embedding.
* ``classifier_time_discriminator``: the DG authors' design at small scale: the **frozen**
  convolutional body of the project's classifier (``dgflow.zoo`` "classifier", through its
  second pooling: ``[B, 2w, 8, 8]``) on the VP-scaled input ``x / sqrt(1 + sigma^2)``,
  followed by a small trainable head (noise-modulated conv, pooling, linear). Its
  checkpoint holds the classifier weights too, so it loads on its own.

With ``n_classes > 0`` a model is class-conditional: denoisers add a label embedding to
the noise embedding; discriminators add a projection term ``<embed(y), h>`` to the logit.
"""

from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ..diffusion.denoisers import EDMPrecond, as_sigma
from ..rows import per_sample
from .classifier import Classifier
from .images import check_image_config, check_images


class NoiseEmbedding(nn.Module):
    """``c_noise`` ``[B]`` (and labels) -> ``[B, dim]``: fixed Fourier features, then a 2-layer MLP."""

    def __init__(self, dim: int, n_classes: int = 0, fourier: int = 16):
        super().__init__()
        self.register_buffer("freqs", 2 * math.pi * torch.logspace(-1, 1.5, fourier // 2))
        self.mlp = nn.Sequential(nn.Linear(fourier, dim), nn.SiLU(), nn.Linear(dim, dim))
        self.label = nn.Embedding(n_classes, dim) if n_classes > 0 else None

    def forward(self, c_noise: Tensor, labels: Tensor | None = None) -> Tensor:
        arg = c_noise[:, None].float() * self.freqs
        emb = self.mlp(torch.cat([arg.cos(), arg.sin()], dim=1))
        if self.label is not None:
            if labels is None:
                raise ValueError("this model is class-conditional (n_classes > 0): pass labels")
            emb = emb + self.label(labels.long())
        return nn.functional.silu(emb)


def _check_int(**values: int) -> None:
    for name, value in values.items():
        if isinstance(value, bool) or not isinstance(value, int) or value < (0 if name == "n_classes" else 1):
            raise ValueError(f"{name} must be a whole number >= {0 if name == 'n_classes' else 1}, got {value!r}")


# ------------------------------------------------------------------------------------------ denoisers


class _MLPNet(nn.Module):
    def __init__(self, dim: int, width: int, depth: int, n_classes: int):
        super().__init__()
        self.emb = NoiseEmbedding(width, n_classes)
        layers: list[nn.Module] = [nn.Linear(dim + width, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.body = nn.Sequential(*layers, nn.Linear(width, dim))

    def forward(self, x: Tensor, c_noise: Tensor, labels: Tensor | None = None) -> Tensor:
        return self.body(torch.cat([x, self.emb(c_noise, labels)], dim=1))


class MLPDenoiser(EDMPrecond):
    """EDM denoiser for ``[B, dim]`` points: an MLP on ``[c_in x, emb(c_noise)]``."""

    def __init__(self, *, dim: int = 2, width: int = 128, depth: int = 3, sigma_data: float = 0.5, n_classes: int = 0):
        _check_int(dim=dim, width=width, depth=depth, n_classes=n_classes)
        super().__init__(_MLPNet(dim, width, depth, n_classes), sigma_data)
        self.dim, self.n_classes = dim, n_classes

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPDenoiser takes points shaped [B, {self.dim}], got {tuple(x.shape)}")
        return super().forward(x, sigma, labels)


class ResBlock(nn.Module):
    """GroupNorm-SiLU-conv, scale/shift by the embedding, GroupNorm-SiLU-conv, plus a (1x1) skip."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int):
        super().__init__()
        self.norm1 = nn.GroupNorm(min(8, c_in), c_in)
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1)
        self.affine = nn.Linear(emb_dim, 2 * c_out)
        self.norm2 = nn.GroupNorm(min(8, c_out), c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1)
        self.skip = nn.Conv2d(c_in, c_out, 1) if c_in != c_out else nn.Identity()

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        h = self.conv1(nn.functional.silu(self.norm1(x)))
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        h = nn.functional.silu(self.norm2(h) * (1 + scale) + shift)
        return self.skip(x) + self.conv2(h)


class _UNet(nn.Module):
    def __init__(self, channels: int, width: int, n_classes: int):
        super().__init__()
        w, e = width, 4 * width
        self.emb = NoiseEmbedding(e, n_classes)
        self.inp = nn.Conv2d(channels, w, 3, padding=1)
        self.enc1 = ResBlock(w, w, e)            # full resolution
        self.enc2 = ResBlock(w, 2 * w, e)        # 1/2
        self.mid = ResBlock(2 * w, 2 * w, e)     # 1/4
        self.dec2 = ResBlock(4 * w, 2 * w, e)    # 1/2, with the enc2 skip
        self.dec1 = ResBlock(3 * w, w, e)        # full, with the enc1 skip
        self.out = nn.Sequential(nn.GroupNorm(min(8, w), w), nn.SiLU(), nn.Conv2d(w, channels, 3, padding=1))
        nn.init.zeros_(self.out[-1].weight)
        nn.init.zeros_(self.out[-1].bias)

    def forward(self, x: Tensor, c_noise: Tensor, labels: Tensor | None = None) -> Tensor:
        emb = self.emb(c_noise, labels)
        pool, up = nn.functional.avg_pool2d, nn.functional.interpolate
        h1 = self.enc1(self.inp(x), emb)
        h2 = self.enc2(pool(h1, 2), emb)
        h = self.mid(pool(h2, 2, ceil_mode=True), emb)
        h = self.dec2(torch.cat([up(h, size=h2.shape[-2:]), h2], 1), emb)
        h = self.dec1(torch.cat([up(h, size=h1.shape[-2:]), h1], 1), emb)
        return self.out(h)


class UNetDenoiser(EDMPrecond):
    """EDM denoiser for ``[B, channels, image_size, image_size]`` images in [-1, 1] (a small U-Net)."""

    def __init__(self, *, channels: int = 1, image_size: int = 28, width: int = 16, sigma_data: float = 0.5,
                 n_classes: int = 0):
        check_image_config(channels, image_size, width=width)
        _check_int(n_classes=n_classes)
        super().__init__(_UNet(channels, width, n_classes), sigma_data)
        self.channels, self.image_size, self.n_classes = channels, image_size, n_classes

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        check_images(x, self.channels, self.image_size, type(self).__name__)
        return super().forward(x, sigma, labels)


# ---------------------------------------------------------------------------- time-dependent discriminators


class _TimeDiscriminator(nn.Module):
    """Shared: input scaling, noise embedding, projection head ``linear(h) + <embed(y), h>``."""

    def __init__(self, feat: int, emb_dim: int, sigma_data: float, n_classes: int):
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}")
        self.sigma_data = float(sigma_data)
        self.n_classes = n_classes
        self.emb = NoiseEmbedding(emb_dim)
        self.linear = nn.Linear(feat, 1)
        self.project = nn.Embedding(n_classes, feat) if n_classes > 0 else None

    def embed(self, x: Tensor, sigma: Tensor | float) -> tuple[Tensor, Tensor, Tensor]:
        sigma = as_sigma(sigma, x)
        if not torch.all(sigma > 0):
            raise ValueError("a time-dependent discriminator takes noise levels sigma > 0")
        x_in = x / per_sample((sigma**2 + self.sigma_data**2).sqrt(), x)
        return x_in, sigma, self.emb(sigma.log() / 4)

    def logit(self, h: Tensor, labels: Tensor | None) -> Tensor:
        out = self.linear(h).squeeze(1)
        if self.project is not None:
            if labels is None:
                raise ValueError("this discriminator is class-conditional (n_classes > 0): pass labels")
            out = out + (self.project(labels.long()) * h).sum(1)
        return out


class MLPTimeDiscriminator(_TimeDiscriminator):
    """``d(x, sigma, labels)`` for points: MLP on ``[x / sqrt(sigma^2 + sd^2), emb]``, SiLU.

    ``fourier > 0`` adds random Fourier features ``sin / cos(2 pi B x_in)`` of the scaled input,
    ``B ~ N(0, fourier_scale^2)`` fixed at construction (saved with the weights; Tancik et al.
    2020): an MLP then resolves structure much finer than the data's scale (the 25-Gaussians
    modes are 0.035 wide in input units) in a few thousand steps.
    """

    def __init__(self, *, dim: int = 2, width: int = 128, depth: int = 3, sigma_data: float = 0.5, n_classes: int = 0,
                 fourier: int = 0, fourier_scale: float = 10.0):
        _check_int(dim=dim, width=width, depth=depth, n_classes=n_classes)
        if isinstance(fourier, bool) or not isinstance(fourier, int) or fourier < 0 or fourier % 2:
            raise ValueError(f"fourier must be an even whole number >= 0 (features, sin and cos), got {fourier!r}")
        super().__init__(width, width, sigma_data, n_classes)
        self.dim = dim
        self.register_buffer("fourier_B", fourier_scale * torch.randn(dim, fourier // 2,
                                                                      generator=torch.Generator().manual_seed(0)))
        layers: list[nn.Module] = [nn.Linear(dim + fourier + width, width), nn.SiLU()]
        for _ in range(depth - 1):
            layers += [nn.Linear(width, width), nn.SiLU()]
        self.body = nn.Sequential(*layers)

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise ValueError(f"MLPTimeDiscriminator takes points shaped [B, {self.dim}], got {tuple(x.shape)}")
        x_in, _, emb = self.embed(x, sigma)
        proj = 2 * math.pi * x_in @ self.fourier_B
        return self.logit(self.body(torch.cat([x_in, proj.sin(), proj.cos(), emb], 1)), labels)


class _ModulatedConv(nn.Module):
    """conv3x3 (stride s) -> scale/shift by the embedding -> SiLU."""

    def __init__(self, c_in: int, c_out: int, emb_dim: int, stride: int = 1):
        super().__init__()
        self.conv = nn.Conv2d(c_in, c_out, 3, stride, 1)
        self.affine = nn.Linear(emb_dim, 2 * c_out)

    def forward(self, x: Tensor, emb: Tensor) -> Tensor:
        scale, shift = self.affine(emb)[:, :, None, None].chunk(2, dim=1)
        return nn.functional.silu(self.conv(x) * (1 + scale) + shift)


class ConvTimeDiscriminator(_TimeDiscriminator):
    """``d(x, sigma, labels)`` for images: three noise-modulated strided convs, mean pool, projection head."""

    def __init__(self, *, channels: int = 1, image_size: int = 28, width: int = 16, sigma_data: float = 0.5,
                 n_classes: int = 0):
        check_image_config(channels, image_size, width=width)
        _check_int(n_classes=n_classes)
        super().__init__(4 * width, 4 * width, sigma_data, n_classes)
        self.channels, self.image_size = channels, image_size
        w, e = width, 4 * width
        self.blocks = nn.ModuleList([_ModulatedConv(channels, w, e), _ModulatedConv(w, 2 * w, e, 2),
                                     _ModulatedConv(2 * w, 4 * w, e, 2)])

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        check_images(x, self.channels, self.image_size, type(self).__name__)
        h, _, emb = self.embed(x, sigma)
        for block in self.blocks:
            h = block(h, emb)
        return self.logit(h.mean((2, 3)), labels)


class ClassifierTimeDiscriminator(_TimeDiscriminator):
    """Frozen features of the project's classifier + a small trainable noise-conditioned head (DG's design).

    ``classifier`` is the classifier's config (``channels``, ``image_size``, ``width``, ...);
    load its trained weights with :meth:`load_classifier` before training the head.
    """

    def __init__(self, *, classifier: dict[str, Any] | None = None, hidden: int = 32, sigma_data: float = 0.5,
                 n_classes: int = 0):
        _check_int(hidden=hidden, n_classes=n_classes)
        super().__init__(hidden, 4 * hidden, sigma_data, n_classes)
        self.classifier_config = dict(classifier or {"channels": 1, "image_size": 28})
        clf = Classifier(**self.classifier_config)
        self.channels, self.image_size = clf.channels, clf.image_size
        self.features = clf.body[:10]  # through the second max-pool: [B, 2w, 8, 8]
        for p in self.features.parameters():
            p.requires_grad_(False)
        self.head1 = _ModulatedConv(2 * clf.width, hidden, 4 * hidden)
        self.head2 = _ModulatedConv(hidden, hidden, 4 * hidden, 2)

    def load_classifier(self, classifier: nn.Module) -> None:
        """Copy the (trained) classifier's convolutional body into the frozen feature extractor."""
        self.features.load_state_dict(classifier.body[:10].state_dict())

    def train(self, mode: bool = True) -> ClassifierTimeDiscriminator:
        super().train(mode)
        self.features.eval()  # frozen: always in inference mode
        return self

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        from .images import pad_to_32

        check_images(x, self.channels, self.image_size, type(self).__name__)
        _, sigma, emb = self.embed(x, sigma)
        x_vp = x / per_sample((1 + sigma**2).sqrt(), x)  # the scale the authors' VP classifier sees
        h = self.features(pad_to_32(x_vp))
        h = self.head2(self.head1(h, emb), emb)
        return self.logit(h.mean((2, 3)), labels)
