"""Denoisers in EDM's form, and adapters for networks written for other conventions.

Every sampler in :mod:`dgflow.diffusion` calls a **denoiser** ``D(x, sigma, labels=None)``:
``x`` ``[B, *shape]`` is a data point plus Gaussian noise of standard deviation ``sigma``
(``[B]``), and ``D`` estimates the clean point ``E[x_0 | x]``. The score of the noisy
marginal is then (Karras et al. 2022, "EDM", eq. 3)

    grad_x log p(x; sigma) = (D(x, sigma) - x) / sigma^2.

* :class:`EDMPrecond` builds such a denoiser from a raw network ``F`` with EDM's
  preconditioning (Table 1):  ``D = c_skip x + c_out F(c_in x, c_noise)`` with
  ``c_skip = sd^2 / (sigma^2 + sd^2)``, ``c_out = sigma sd / sqrt(sigma^2 + sd^2)``,
  ``c_in = 1 / sqrt(sigma^2 + sd^2)``, ``c_noise = ln(sigma) / 4`` (``sd`` = sigma_data).
* :func:`from_epsilon_vp` wraps an epsilon-prediction network of the variance-preserving
  convention (DDPM, guided-diffusion, diffusers): ``x_vp = sqrt(abar) x_0 + sqrt(1 - abar) eps``.
  The two conventions are the same process up to scale: ``sigma^2 = (1 - abar) / abar`` and
  ``x_vp = x / sqrt(1 + sigma^2)``, so ``D(x, sigma) = x - sigma eps(x / sqrt(1 + sigma^2), t(sigma))``.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
from torch import Tensor, nn

from ..rows import per_sample


def as_sigma(sigma: Tensor | float, x: Tensor) -> Tensor:
    """``sigma`` as a ``[B]`` tensor on ``x``'s device and dtype (a number is broadcast)."""
    sigma = torch.as_tensor(sigma, dtype=x.dtype, device=x.device)
    if sigma.ndim == 0:
        sigma = sigma.expand(len(x))
    if sigma.shape != (len(x),):
        raise ValueError(f"sigma must be a number or hold one noise level per sample ([{len(x)}]), "
                         f"got shape {tuple(sigma.shape)}")
    return sigma


class EDMPrecond(nn.Module):
    """EDM-preconditioned denoiser ``D(x, sigma, labels) = c_skip x + c_out F(c_in x, c_noise, labels)``.

    ``net(x_in, c_noise, labels)`` is the raw network (``c_noise = ln(sigma) / 4``, shape ``[B]``).
    With this scaling the network's input and training target have unit variance at every
    noise level when the data have standard deviation ``sigma_data``.
    """

    def __init__(self, net: nn.Module, sigma_data: float = 0.5):
        super().__init__()
        if not sigma_data > 0:
            raise ValueError(f"sigma_data must be > 0, got {sigma_data!r}")
        self.net = net
        self.sigma_data = float(sigma_data)

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        sigma = as_sigma(sigma, x)
        sd2 = self.sigma_data**2
        s = per_sample(sigma, x)
        c_skip = sd2 / (s**2 + sd2)
        c_out = s * self.sigma_data / (s**2 + sd2).sqrt()
        c_in = 1 / (s**2 + sd2).sqrt()
        c_noise = sigma.log() / 4
        return c_skip * x + c_out * self.net(c_in * x, c_noise, labels)

    def loss(self, x0: Tensor, sigma: Tensor, noise: Tensor, labels: Tensor | None = None) -> Tensor:
        """EDM's weighted denoising loss per sample: ``lambda(sigma) |D(x0 + sigma n) - x0|^2`` with
        ``lambda = (sigma^2 + sd^2) / (sigma sd)^2`` (so every noise level has unit target variance)."""
        s = per_sample(sigma, x0)
        weight = (s**2 + self.sigma_data**2) / (s * self.sigma_data) ** 2
        return (weight * (self(x0 + s * noise, sigma, labels) - x0) ** 2).flatten(1).mean(1)


class EpsilonVPDenoiser(nn.Module):
    """An epsilon-prediction network of the VP convention seen as an EDM denoiser (see :func:`from_epsilon_vp`)."""

    def __init__(self, eps_model: Callable[..., Tensor], alphas_cumprod: Tensor | None = None,
                 beta_min: float = 0.1, beta_max: float = 20.0, time_scale: float = 1.0, timestep: str = "nearest"):
        super().__init__()
        if timestep not in ("nearest", "fractional"):
            raise ValueError(f"timestep must be 'nearest' or 'fractional', got {timestep!r}")
        self.eps_model = eps_model
        self.timestep = timestep
        self.beta_min, self.beta_d, self.time_scale = float(beta_min), float(beta_max) - float(beta_min), float(time_scale)
        if alphas_cumprod is not None:
            abar = torch.as_tensor(alphas_cumprod, dtype=torch.float64).flatten()
            if len(abar) < 2 or not torch.all((abar > 0) & (abar < 1)):
                raise ValueError("alphas_cumprod must hold at least two values in (0, 1), one per discrete timestep")
            if not torch.all(abar[1:] < abar[:-1]):
                raise ValueError("alphas_cumprod must decrease with the timestep (abar_0 close to 1)")
            self.register_buffer("sigmas", ((1 - abar) / abar).sqrt())  # increasing with the timestep
        else:
            if not (beta_min > 0 and beta_max > beta_min):
                raise ValueError(f"need 0 < beta_min < beta_max, got {beta_min}, {beta_max}")
            self.sigmas = None
        self.sigma_min = float(self.sigmas[0]) if self.sigmas is not None else self._vp_sigma(1e-3)
        self.sigma_max = float(self.sigmas[-1]) if self.sigmas is not None else self._vp_sigma(1.0)

    def _vp_sigma(self, t: float) -> float:
        return math.sqrt(math.expm1(0.5 * self.beta_d * t**2 + self.beta_min * t))

    def vp_time(self, sigma: Tensor) -> Tensor:
        """The model's time for ``sigma``: a (possibly fractional) timestep index, or ``t`` in [0, 1] scaled."""
        if self.sigmas is not None:
            sigmas = self.sigmas.to(sigma.device)
            log_s, log_table = sigma.double().log(), sigmas.log()
            j = torch.searchsorted(log_table, log_s).clamp(1, len(sigmas) - 1)
            if self.timestep == "nearest":
                return torch.where(log_s - log_table[j - 1] <= log_table[j] - log_s, j - 1, j)
            frac = ((log_s - log_table[j - 1]) / (log_table[j] - log_table[j - 1])).clamp(0, 1)
            return (j - 1 + frac).to(sigma.dtype)
        # continuous VP: sigma(t)^2 = exp(beta_d t^2 / 2 + beta_min t) - 1, solved for t
        t = ((self.beta_min**2 + 2 * self.beta_d * torch.log1p(sigma**2)).sqrt() - self.beta_min) / self.beta_d
        return t * self.time_scale

    def round_sigma(self, sigma: Tensor) -> Tensor:
        """The nearest noise level the model was trained at (discrete models with ``timestep='nearest'``)."""
        if self.sigmas is None or self.timestep != "nearest":
            return sigma
        sigma = torch.as_tensor(sigma)
        return self.sigmas.to(sigma.device, sigma.dtype)[self.vp_time(sigma.reshape(-1))].reshape(sigma.shape)

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        sigma = as_sigma(sigma, x)
        t = self.vp_time(sigma)
        if self.sigmas is not None and self.timestep == "nearest":
            sigma = self.sigmas.to(x.device, x.dtype)[t]  # the noise level the network is told about
        s = per_sample(sigma, x)
        x_vp = x / (1 + s**2).sqrt()
        eps = self.eps_model(x_vp, t) if labels is None else self.eps_model(x_vp, t, labels)
        return x - s * eps


def from_epsilon_vp(eps_model: Callable[..., Tensor], alphas_cumprod: Tensor | None = None, *,
                    beta_min: float = 0.1, beta_max: float = 20.0, time_scale: float = 1.0,
                    timestep: str = "nearest") -> EpsilonVPDenoiser:
    """Wrap ``eps_model(x_vp, t[, labels])`` (predicts the noise of a VP diffusion) as ``D(x, sigma, labels)``.

    * Discrete (DDPM, guided-diffusion, diffusers' ``UNet2DModel``): pass ``alphas_cumprod``
      (``[T]``, e.g. ``scheduler.alphas_cumprod``). ``t`` is the timestep whose
      ``sigma_j = sqrt((1 - abar_j) / abar_j)`` is nearest to ``sigma`` in log scale
      (``timestep="nearest"``; the sampler then rounds its noise levels to those ``sigma_j``,
      as EDM does), or a fractional index interpolated in ``log sigma`` (``"fractional"``, for
      networks that embed real-valued timesteps).
    * Continuous VP SDE (score_sde, EDM's ``VPPrecond``): ``beta(t) = beta_min + t (beta_max - beta_min)``,
      ``sigma(t) = sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)``; the network gets ``t * time_scale``
      (EDM's VP networks take ``999 t``).

    Then ``x_vp = x / sqrt(1 + sigma^2)`` and ``D(x, sigma) = x - sigma eps_model(x_vp, t)``.
    """
    return EpsilonVPDenoiser(eps_model, alphas_cumprod, beta_min, beta_max, time_scale, timestep)


def vp_time_to_sigma(t: float, beta_min: float = 0.1, beta_max: float = 20.0) -> float:
    """EDM noise level of the VP SDE's time ``t`` in [0, 1]: ``sqrt(exp(beta_d t^2 / 2 + beta_min t) - 1)``.

    The DG authors state their guidance range in this time (``time_min = 0.01`` is ``sigma ~ 0.0447``).
    """
    return math.sqrt(math.expm1(0.5 * (beta_max - beta_min) * t**2 + beta_min * t))
