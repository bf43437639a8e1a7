"""A compact multiscale RealNVP (Dinh et al., 2017) for images in ``[-1, 1]``.

Image -> latent (``inverse``), with ``L = levels`` scales:

    y = logit(alpha + (1 - 2 alpha) (x + 1) / 2)                 # [-1, 1] -> R, alpha = 0.05
    scale l:  squeeze (space-to-depth 2x2: [c, h, w] -> [4c, h/2, w/2])
              -> K affine couplings on channel halves, alternating which half is transformed:
                 y_b <- y_b * exp(s(y_a)) + t(y_a),  s = scale * tanh(.),  (s, t) = CNN(y_a)
              -> (not the last scale) factor out half the channels; the other half goes to scale l+1
              -> the factored-out half and scale l+1's output are concatenated and un-squeezed,
    so the latent z has the image's shape [C, H, W], with prior N(0, I).

``forward(z)`` is the generator direction (latent -> image), ``inverse(x)`` the exact inverse,
``log_prob(x)`` the exact log density (nats) of ``x`` by change of variables, including the
logit transform's log-Jacobian. For 8-bit data, train on images passed through :func:`dequantize`
(uniform noise over each pixel's bin of width 2/256) and report :func:`bits_per_dim`.
The CNN in each coupling is conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3 with a zero-initialised
last layer (each coupling starts as the identity). Simplifications against the paper: no
checkerboard masks, no batch norm in the flow; squeezing first makes channel halves available
for one-channel MNIST. ``image_size`` must be divisible by ``2 ** levels`` (28: up to 2 levels,
32: the default 3). Generated images lie in ``(-1 - 2 alpha/(1 - 2 alpha), 1 + ...)``, i.e. may
overshoot ``[-1, 1]`` by up to 0.11; clamp them for display, not before ``inverse``.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..checks import check_int
from .images import check_images


class AffineCoupling(nn.Module):
    """``y_b = x_b * exp(s(x_a)) + t(x_a)`` on the two channel halves ``(a, b)`` (swapped when ``flip``)."""

    def __init__(self, channels: int, hidden: int, flip: bool):
        super().__init__()
        self.flip, half = flip, channels // 2
        self.net = nn.Sequential(nn.Conv2d(half, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, 2 * half, 3, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.scale = nn.Parameter(torch.ones(1, half, 1, 1))

    def _st(self, a: Tensor) -> tuple[Tensor, Tensor]:
        s, t = self.net(a).chunk(2, dim=1)
        return self.scale * torch.tanh(s), t

    def encode(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent direction; returns ``(y, log|det J|)`` with the log-det shaped ``[B]``."""
        a, b = x.chunk(2, dim=1)
        if self.flip:
            a, b = b, a
        s, t = self._st(a)
        b = b * s.exp() + t
        return torch.cat([b, a] if self.flip else [a, b], dim=1), s.flatten(1).sum(1)

    def decode(self, y: Tensor) -> Tensor:
        """The inverse map ``x = f^{-1}(y)``."""
        a, b = y.chunk(2, dim=1)
        if self.flip:
            a, b = b, a
        s, t = self._st(a)
        b = (b - t) * (-s).exp()
        return torch.cat([b, a] if self.flip else [a, b], dim=1)


class RealNVP(nn.Module):
    """Multiscale RealNVP: logit transform, then per scale squeeze + affine couplings + factor-out of half."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, width: int = 64, levels: int | None = None,
                 couplings: int = 4, alpha: float = 0.05):
        super().__init__()
        for name, value in {"channels": channels, "image_size": image_size, "width": width, "couplings": couplings}.items():
            check_int(name, value, 1)
        max_levels = (image_size & -image_size).bit_length() - 1  # times 2 divides image_size
        levels = min(3, max_levels) if levels is None else levels
        if not isinstance(levels, int) or not 1 <= levels <= max_levels:
            raise ValueError(f"levels must be between 1 and {max_levels} for image_size {image_size} (each level "
                             f"halves the size), got {levels!r}")
        if not 0 < alpha < 0.5:
            raise ValueError(f"alpha must lie in (0, 0.5), got {alpha!r}")
        self.channels, self.image_size, self.width, self.levels, self.alpha = channels, image_size, width, levels, alpha
        self.scales = nn.ModuleList(
            nn.ModuleList(AffineCoupling(4 * channels * 2**level, width, flip=k % 2 == 1) for k in range(couplings))
            for level in range(levels))

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        """The latent has the image's shape ``[C, H, W]``."""
        return (self.channels, self.image_size, self.image_size)

    # ------------------------------------------------------------------ directions
    def forward(self, z: Tensor) -> Tensor:
        """Generator direction: latent ``z [B, C, H, W]`` -> image ``x`` of the same shape."""
        check_images(z, self.channels, self.image_size, "RealNVP.forward (latent z)")
        y = self._decode(z, 0)
        return 2 * (torch.sigmoid(y) - self.alpha) / (1 - 2 * self.alpha) - 1

    def inverse(self, x: Tensor) -> Tensor:
        """Image -> latent, the exact inverse of :meth:`forward`."""
        return self._inverse_with_logdet(x)[0]

    def log_prob(self, x: Tensor) -> Tensor:
        """Exact ``log p(x)`` in nats, shaped ``[B]``: ``log N(inverse(x); 0, I) + log|det d inverse / dx|``."""
        z, logdet = self._inverse_with_logdet(x)
        log_pz = -0.5 * (z**2).flatten(1).sum(1) - 0.5 * z[0].numel() * math.log(2 * math.pi)
        return log_pz + logdet

    # ------------------------------------------------------------------ internals
    def _inverse_with_logdet(self, x: Tensor) -> tuple[Tensor, Tensor]:
        check_images(x, self.channels, self.image_size, "RealNVP")
        p = self.alpha + (1 - 2 * self.alpha) * (x + 1) / 2
        if not bool(((p > 0) & (p < 1)).all()):
            raise ValueError("RealNVP takes images in [-1, 1] (values outside the logit transform's domain given)")
        y = torch.log(p) - torch.log1p(-p)
        logdet = (math.log((1 - 2 * self.alpha) / 2) - torch.log(p) - torch.log1p(-p)).flatten(1).sum(1)
        z, ld = self._encode(y, 0)
        return z, logdet + ld

    def _encode(self, h: Tensor, level: int) -> tuple[Tensor, Tensor]:
        h = F.pixel_unshuffle(h, 2)
        logdet = h.new_zeros(len(h))
        for coupling in self.scales[level]:
            h, ld = coupling.encode(h)
            logdet = logdet + ld
        if level < self.levels - 1:
            keep, out = h.chunk(2, dim=1)
            keep, ld = self._encode(keep, level + 1)
            h, logdet = torch.cat([keep, out], dim=1), logdet + ld
        return F.pixel_shuffle(h, 2), logdet

    def _decode(self, h: Tensor, level: int) -> Tensor:
        h = F.pixel_unshuffle(h, 2)
        if level < self.levels - 1:
            keep, out = h.chunk(2, dim=1)
            h = torch.cat([self._decode(keep, level + 1), out], dim=1)
        for coupling in reversed(self.scales[level]):
            h = coupling.decode(h)
        return F.pixel_shuffle(h, 2)


def dequantize(x: Tensor, generator: torch.Generator | None = None) -> Tensor:
    """8-bit images in ``[-1, 1]`` (``2k/255 - 1``) -> ``2(k + u)/256 - 1``, ``u ~ U[0, 1)`` per pixel."""
    k = torch.round((x + 1) * 127.5)
    u = torch.rand(x.shape, generator=generator, dtype=x.dtype, device=x.device)
    return 2 * (k + u) / 256 - 1


def bits_per_dim(log_prob: Tensor, dims: int) -> Tensor:
    """Bits per dimension of dequantised 8-bit data from ``log_prob`` on ``[-1, 1]`` (bin width 2/256)."""
    return -log_prob / (dims * math.log(2)) + 7.0
