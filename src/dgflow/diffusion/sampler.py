"""EDM's Heun sampler (Karras et al. 2022, Algorithm 2), open to a correction such as Discriminator Guidance.

Noise levels (EDM eq. 5), ``i = 0 .. N-1`` and ``t_N = 0``::

    t_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho

One step from ``x_i`` at ``t_i`` (``d = -t * score``, score ``= (D(x; t) - x) / t^2``)::

    gamma_i = min(S_churn / N, sqrt(2) - 1)  if S_min <= t_i <= S_max  else 0
    t_hat   = t_i (1 + gamma_i);   x_hat = x_i + sqrt(t_hat^2 - t_i^2) S_noise eps,   eps ~ N(0, I)
    d       = (x_hat - D(x_hat; t_hat)) / t_hat                                   (Euler)
    x_{i+1} = x_hat + (t_{i+1} - t_hat) d
    if t_{i+1} > 0:                                                               (Heun)
        d'      = (x_{i+1} - D(x_{i+1}; t_{i+1})) / t_{i+1}
        x_{i+1} = x_hat + (t_{i+1} - t_hat) (d + d') / 2

A :class:`Correction` (Discriminator Guidance: :class:`~dgflow.diffusion.guidance.DGCorrection`)
subtracts its term from ``d`` and ``d'`` and may raise ``S_churn`` / ``S_noise`` per sample
(the DG authors' boosting); without one this is EDM's ``edm_sampler``, line for line.

Every random number is drawn per sample with :class:`dgflow.rng.SampleNoise`, so a sample's
path depends only on ``(seed, sample id)``, not on the batch it is drawn in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import torch
from torch import Tensor

from ..checks import check_int, check_labels, check_positive, check_sample_ids
from ..progress import progress_bar as tqdm
from ..ratio import check_samples
from ..rng import SampleNoise
from ..rows import per_sample


def edm_sigmas(steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               round_sigma: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """EDM's noise levels ``sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min``, then ``sigma_N = 0`` (float64, ``[N + 1]``)."""
    check_int("steps", steps, 2)
    if not (0 < sigma_min < sigma_max < math.inf):
        raise ValueError(f"need 0 < sigma_min < sigma_max < inf, got sigma_min={sigma_min!r}, sigma_max={sigma_max!r}")
    if not rho > 0:
        raise ValueError(f"rho must be > 0 (EDM: 7), got {rho!r}")
    i = torch.arange(steps, dtype=torch.float64)
    a, b = sigma_max ** (1 / rho), sigma_min ** (1 / rho)
    sigmas = (a + i / (steps - 1) * (b - a)) ** rho
    if round_sigma is not None:
        sigmas = round_sigma(sigmas)
    return torch.cat([sigmas, sigmas.new_zeros(1)])


class Correction(Protocol):
    """A guidance method's addition to one batch of :func:`sample_edm` (DG: :class:`~dgflow.diffusion.DGCorrection`).

    ``churn`` returns step ``i``'s per-sample ``S_churn`` and ``S_noise`` (``[B]``; boosting raises
    them); ``euler`` and ``heun`` return the term subtracted from that stage's ``d = (x - D(x; t)) / t``
    (``t`` times the weighted score correction); ``info`` is added to the callback's dict.
    """

    def churn(self, i: int, S_churn: Tensor, S_noise: Tensor) -> tuple[Tensor, Tensor]:
        """Step ``i``'s per-sample ``(S_churn, S_noise)`` (``[B]``), from the sampler's settings given."""

    def euler(self, i: int, x_hat: Tensor, t_hat: Tensor) -> Tensor | float:
        """The term subtracted from ``d = (x_hat - D(x_hat; t_hat)) / t_hat`` (``t_hat`` ``[B]``)."""

    def heun(self, i: int, x_next: Tensor, t_next: Tensor) -> Tensor | float:
        """The term subtracted from ``d' = (x_next - D(x_next; t_next)) / t_next`` (``t_next`` ``[B]``)."""

    def info(self) -> dict[str, Any]:
        """Entries added to the callback's dict after each step."""


class Guidance(Protocol):
    """Makes the :class:`Correction` of one batch (e.g. :class:`~dgflow.diffusion.DiscriminatorGuidance`):
    ``latents`` are in the networks' dtype, ``labels`` one per sample or None."""

    def correction(self, latents: Tensor, labels: Tensor | None) -> Correction:
        """A fresh correction for the batch of ``latents`` (and ``labels``) about to be sampled."""


def sample_edm(
    denoiser: Callable[..., Tensor],
    latents: Tensor,
    *,
    labels: Tensor | None = None,
    steps: int = 18,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = math.inf,
    S_noise: float = 1.0,
    guidance: Guidance | None = None,
    seed: int = 0,
    sample_ids: Tensor | Sequence[int] | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
    dtype: torch.dtype | None = torch.float64,
) -> Tensor:
    """Draw samples with EDM's Heun sampler (``edm_sampler``) from standard-normal ``latents`` ``[B, *shape]``.

    ``denoiser(x, sigma, labels)`` is an EDM denoiser (``sigma`` ``[B]``); its ``sigma_min`` /
    ``sigma_max`` attributes, when present, narrow the schedule and its ``round_sigma`` rounds
    the noise levels, as in EDM. ``guidance`` (e.g. a
    :class:`~dgflow.diffusion.guidance.DiscriminatorGuidance`) adds its :class:`Correction`. Churn
    noise is keyed by ``(seed, sample_ids)`` (default ids ``0 .. B-1``). ``callback`` gets
    ``{"i", "x", "sigma", "sigma_hat", "denoised"}`` and the correction's ``info()`` (DG:
    ``"log_ratio"``) after every step.

    ``dtype``: the precision of the sampler's own arithmetic (positions, noise levels, churn
    noise, the Euler and Heun updates); float64 by default, as in EDM's ``edm_sampler``
    (MPS has no float64: there the latents' dtype is used). ``None``: the latents' dtype
    throughout. The denoiser and the discriminator are always called in the latents' dtype
    (their outputs are cast up, as EDM casts ``net(...)`` to float64), and the samples are
    returned in the latents' dtype.
    """
    B, ids, labels = _check_inputs(latents, labels, sample_ids, S_churn=S_churn, S_min=S_min, S_noise=S_noise)
    sigma_min = max(sigma_min, getattr(denoiser, "sigma_min", 0.0))  # the noise levels the network supports
    sigma_max = min(sigma_max, getattr(denoiser, "sigma_max", math.inf))
    round_sigma = getattr(denoiser, "round_sigma", _unrounded)
    work, device = _work_dtype(dtype, latents), latents.device
    randn = SampleNoise(seed, ids, device)
    correction = None if guidance is None else guidance.correction(latents, labels)

    def net(x: Tensor, t: Tensor) -> Tensor:  # the denoiser sees the latents' dtype; the sampler works in `work`
        x_net, t_net = x.to(latents.dtype), t.to(latents.dtype)
        out = denoiser(x_net, t_net, labels) if labels is not None else denoiser(x_net, t_net)
        return check_samples(out, B, "the denoiser").to(work)  # a NaN denoiser is named before guidance sees it

    # Time step discretization.
    t_steps = edm_sigmas(steps, sigma_min, sigma_max, rho, round_sigma).to(device, work)

    # Main sampling loop.
    x_next = latents.to(work) * t_steps[0]
    for i in tqdm(range(steps), desc="EDM sampler", disable=None if progress else True, leave=False):
        t_cur, t_next = t_steps[i], t_steps[i + 1]
        x_cur = x_next

        # Increase noise temporarily (per sample: a correction may boost it).
        S_churn_i = torch.full((B,), float(S_churn), dtype=work, device=device)
        S_noise_i = torch.full((B,), float(S_noise), dtype=work, device=device)
        if correction is not None:
            S_churn_i, S_noise_i = correction.churn(i, S_churn_i, S_noise_i)
        in_range = S_min <= t_cur <= S_max
        gamma = (S_churn_i / steps).clamp(max=math.sqrt(2) - 1) if in_range else torch.zeros_like(S_churn_i)
        t_hat = round_sigma(t_cur * (1 + gamma))
        x_hat = x_cur
        if bool((t_hat > t_cur).any()):
            eps = randn.normal(x_cur.shape[1:], step=i, stream="churn", dtype=work)
            x_hat = x_cur + per_sample((t_hat**2 - t_cur**2).clamp(min=0).sqrt() * S_noise_i, x_cur) * eps

        # Euler step.
        denoised = net(x_hat, t_hat)
        d_cur = (x_hat - denoised) / per_sample(t_hat, x_cur)
        if correction is not None:
            d_cur = d_cur - correction.euler(i, x_hat, t_hat)
        x_next = x_hat + per_sample(t_next - t_hat, x_cur) * d_cur

        # Apply 2nd order correction.
        if i < steps - 1:
            d_prime = (x_next - net(x_next, t_next.expand(B))) / t_next
            if correction is not None:
                d_prime = d_prime - correction.heun(i, x_next, t_next.expand(B))
            x_next = x_hat + per_sample(t_next - t_hat, x_cur) * (0.5 * d_cur + 0.5 * d_prime)

        if callback is not None:
            callback({"i": i, "x": x_next, "sigma": t_cur, "sigma_hat": t_hat, "denoised": denoised,
                      **(correction.info() if correction is not None else {})})
    return x_next.to(latents.dtype)


def _unrounded(sigma: Tensor) -> Tensor:
    """A denoiser without ``round_sigma`` takes every noise level as it is."""
    return sigma


def _work_dtype(dtype: torch.dtype | None, latents: Tensor) -> torch.dtype:
    """The sampler's arithmetic dtype: ``dtype``, or the latents' where it is None or the device lacks float64."""
    if dtype is None or (dtype == torch.float64 and latents.device.type == "mps"):
        return latents.dtype
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype (EDM: torch.float64) or None, got {dtype!r}")
    return dtype


def _check_inputs(latents: Tensor, labels: Tensor | None, sample_ids: Tensor | Sequence[int] | None,
                  **churn: float) -> tuple[int, Tensor, Tensor | None]:
    """The batch size, sample ids (default ``0 .. B-1``) and labels, after checking the latents, that ids
    and labels hold one entry per latent, and that the churn settings are >= 0."""
    if not isinstance(latents, Tensor):
        raise TypeError(f"latents must be a torch.Tensor of standard-normal draws [B, *shape], got {type(latents).__name__}")
    if latents.ndim < 2:
        raise ValueError(f"latents must be shaped [B, *shape] (at least 2-D), got shape {tuple(latents.shape)}; "
                         "for one sample use latents[None]")
    if not latents.is_floating_point():
        raise TypeError(f"latents must be floating point, got {latents.dtype}")
    if not torch.isfinite(latents).all():
        raise ValueError("latents contain NaN or inf")
    B = len(latents)
    ids = torch.arange(B) if sample_ids is None else check_sample_ids(sample_ids, B)
    for name, value in churn.items():
        check_positive(name, value, allow_zero=True)
    return B, ids, check_labels(labels, B)
