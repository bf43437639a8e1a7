"""Glow (Kingma & Dhariwal, 2018) for images in ``[-1, 1]``: the multiscale flow of :mod:`.flow` with
Glow's step of flow in place of RealNVP's coupling.

Image -> latent (``inverse``), with ``L = levels`` scales and ``K = couplings`` steps per scale:

    y = logit(alpha + (1 - 2 alpha) (x + 1) / 2)                 # as the RealNVP of :mod:`.flow`
    scale l:  squeeze (space-to-depth 2x2) -> K steps of flow -> (not the last) factor out half
    step of flow (data -> latent), on h [B, c, H, W]:
        actnorm:          h <- (h - b) * exp(-log_scale)         per channel; b, log_scale set from the
                                                                 first training batch (zero mean, unit variance)
                          log|det| = -H W sum(log_scale)
        invertible 1x1:   h <- W h,  W = P L (U + diag(sign_s exp(log_s)))    (LU-decomposed, P fixed)
                          log|det| = H W sum(log_s)
        affine coupling:  (h_a, h_b) = split(h);  (t, s_raw) = NN(h_a);  s = sigmoid(s_raw + 2)
                          h_b <- (h_b + t) * s,  log|det| = sum(log s)
    latent z [C, H, W] (the image's shape), prior N(0, I).

``NN`` is conv3x3 -> ReLU -> conv1x1 -> ReLU -> conv3x3 with a zero-initialised last layer (each
coupling starts as the identity), as in the paper. Simplifications against the paper: the factored-out
halves have the fixed prior N(0, I) (no learned conditional prior), no actnorm inside ``NN``, and the
logit transform of :mod:`.flow` keeps generated pixels bounded. ``forward(z)`` (latent -> image),
``inverse(x)`` and ``log_prob(x)`` behave as :class:`~.flow.RealNVP`'s; train with
:func:`~.flow.dequantize` and :func:`~.flow.bits_per_dim`.

``temperature`` T (Glow's reduced-temperature sampling) makes the generator direction ``x = flow(T z)``
and ``inverse(x) = flow^{-1}(x) / T``, so that ``z ~ N(0, I)`` draws from the tempered model; ``log_prob``
stays the trained flow's density (T = 1). The paper samples at T = 0.7: at T = 1 a CPU-scale MNIST Glow
(`README`) sends 8.6% of latents to non-finite images (divisions by small coupling scales compound over
the inverse); at 0.7 about 1 in 2,500 did, and DGflow's gradient steps turned such overflows into NaN
latents (inf * 0 in the backward pass). So the generator direction clamps each step's output to +-100
(``DECODE_GUARD``; a trained flow's intermediate values are O(10), and the final sigmoid saturates long
before) and divides by coupling scales of at least 1e-3 (``SCALE_FLOOR``): exact wherever the guards are
inactive, finite (values and gradients) elsewhere. ``inverse`` and ``log_prob`` are unguarded and exact.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from .flow import RealNVP

DECODE_GUARD = 100.0  # float32 overflow guards of the generator direction (see the module docstring)
SCALE_FLOOR = 1e-3


class ActNorm(nn.Module):
    """Per-channel affine ``(h - bias) * exp(-log_scale)``, initialised from the first training batch."""

    def __init__(self, channels: int):
        super().__init__()
        self.bias = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.log_scale = nn.Parameter(torch.zeros(1, channels, 1, 1))
        self.register_buffer("initialized", torch.tensor(False))

    @torch.no_grad()
    def _initialize(self, h: Tensor) -> None:
        self.bias.copy_(h.mean(dim=(0, 2, 3), keepdim=True))
        self.log_scale.copy_(torch.log(h.std(dim=(0, 2, 3), keepdim=True) + 1e-6))
        self.initialized.fill_(True)

    def encode(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent direction; returns ``(y, log|det J|)`` with the log-det shaped ``[B]``."""
        if self.training and not bool(self.initialized):
            self._initialize(h)
        logdet = -h[0, 0].numel() * self.log_scale.sum()
        return (h - self.bias) * torch.exp(-self.log_scale), logdet.expand(len(h))

    def decode(self, y: Tensor) -> Tensor:
        """The inverse map (latent -> data direction)."""
        return y * torch.exp(self.log_scale) + self.bias


class InvertibleConv1x1(nn.Module):
    """``h <- W h`` per pixel with ``W = P L (U + diag(sign_s * exp(log_s)))`` (Glow's LU form)."""

    def __init__(self, channels: int):
        super().__init__()
        q = torch.linalg.qr(torch.randn(channels, channels))[0]  # a random rotation, as in the paper
        p, lower, upper = torch.linalg.lu(q)
        diag = upper.diagonal()
        self.register_buffer("permutation", p)
        self.register_buffer("sign_s", diag.sign())
        self.register_buffer("lower_mask", torch.tril(torch.ones(channels, channels), -1))
        self.lower = nn.Parameter(lower)
        self.upper = nn.Parameter(torch.triu(upper, 1))
        self.log_s = nn.Parameter(diag.abs().log())

    def weight(self) -> Tensor:
        """``W = P L (U + diag(sign_s exp(log_s)))`` from its LU factors."""
        eye = torch.eye(len(self.log_s), dtype=self.log_s.dtype, device=self.log_s.device)
        lower = self.lower * self.lower_mask + eye
        upper = self.upper * self.lower_mask.T + torch.diag(self.sign_s * self.log_s.exp())
        return self.permutation @ lower @ upper

    def encode(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent direction; returns ``(y, log|det J|)`` with the log-det shaped ``[B]``."""
        w = self.weight()
        logdet = h[0, 0].numel() * self.log_s.sum()
        return F.conv2d(h, w[:, :, None, None]), logdet.expand(len(h))

    def decode(self, y: Tensor) -> Tensor:
        """The inverse map (latent -> data direction)."""
        return F.conv2d(y, torch.linalg.inv(self.weight())[:, :, None, None])


class GlowCoupling(nn.Module):
    """``h_b <- (h_b + t(h_a)) * sigmoid(s_raw(h_a) + 2)`` on the channel halves ``(h_a, h_b)``."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        half = channels // 2
        self.net = nn.Sequential(nn.Conv2d(half, hidden, 3, 1, 1), nn.ReLU(), nn.Conv2d(hidden, hidden, 1), nn.ReLU(),
                                 nn.Conv2d(hidden, 2 * (channels - half), 3, 1, 1))
        nn.init.zeros_(self.net[-1].weight)
        nn.init.zeros_(self.net[-1].bias)
        self.half = half

    def _shift_scale(self, a: Tensor) -> tuple[Tensor, Tensor]:
        t, s_raw = self.net(a).chunk(2, dim=1)
        return t, torch.sigmoid(s_raw + 2.0)

    def encode(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent direction; returns ``(y, log|det J|)`` with the log-det shaped ``[B]``."""
        a, b = h[:, :self.half], h[:, self.half:]
        t, s = self._shift_scale(a)
        return torch.cat([a, (b + t) * s], dim=1), s.log().flatten(1).sum(1)

    def decode(self, y: Tensor) -> Tensor:
        """The inverse map (latent -> data direction)."""
        a, b = y[:, :self.half], y[:, self.half:]
        t, s = self._shift_scale(a)
        return torch.cat([a, b / s.clamp_min(SCALE_FLOOR) - t], dim=1)


class FlowStep(nn.Module):
    """One Glow step of flow: actnorm -> invertible 1x1 conv -> affine coupling (data -> latent)."""

    def __init__(self, channels: int, hidden: int):
        super().__init__()
        self.layers = nn.ModuleList([ActNorm(channels), InvertibleConv1x1(channels), GlowCoupling(channels, hidden)])

    def encode(self, h: Tensor) -> tuple[Tensor, Tensor]:
        """Data -> latent direction; returns ``(y, log|det J|)`` with the log-det shaped ``[B]``."""
        logdet = h.new_zeros(len(h))
        for layer in self.layers:
            h, ld = layer.encode(h)
            logdet = logdet + ld
        return h, logdet

    def decode(self, y: Tensor) -> Tensor:
        """The inverse map (latent -> data direction)."""
        for layer in reversed(self.layers):
            y = layer.decode(y).clamp(-DECODE_GUARD, DECODE_GUARD)
        return y


class Glow(RealNVP):
    """Multiscale Glow: logit transform, then per scale squeeze + ``couplings`` steps of flow + factor-out."""

    def __init__(self, *, channels: int = 3, image_size: int = 32, width: int = 64, levels: int | None = None,
                 couplings: int = 8, alpha: float = 0.05, temperature: float = 1.0):
        super().__init__(channels=channels, image_size=image_size, width=width, levels=levels, couplings=couplings,
                         alpha=alpha)
        if not 0 < temperature <= 1:
            raise ValueError(f"temperature must lie in (0, 1] (1: the trained density; Glow samples at 0.7), "
                             f"got {temperature!r}")
        self.temperature = temperature
        self.scales = nn.ModuleList(  # replaces RealNVP's couplings: same squeeze / factor-out recursion
            nn.ModuleList(FlowStep(4 * channels * 2**level, width) for _ in range(couplings))
            for level in range(self.levels))

    def forward(self, z: Tensor) -> Tensor:
        """Generator direction at the temperature: ``x = flow(T z)``."""
        return super().forward(self.temperature * z)

    def inverse(self, x: Tensor) -> Tensor:
        """The exact inverse of :meth:`forward`: ``flow^{-1}(x) / T``."""
        return super().inverse(x) / self.temperature
