"""EDM's Heun sampler (Karras et al. 2022, Algorithm 2) with Discriminator Guidance (Kim et al. 2023).

Noise levels (EDM eq. 5), ``i = 0 .. N-1`` and ``sigma_N = 0``::

    sigma_i = (sigma_max^(1/rho) + i / (N - 1) (sigma_min^(1/rho) - sigma_max^(1/rho)))^rho

One step from ``x_i`` at ``sigma_i`` (``d = -sigma * score``, score ``= (D(x; sigma) - x) / sigma^2``)::

    gamma   = min(S_churn / N, sqrt(2) - 1)  if S_min <= sigma_i <= S_max  else 0
    s_hat   = sigma_i (1 + gamma);   x_hat = x_i + sqrt(s_hat^2 - sigma_i^2) S_noise xi,   xi ~ N(0, I)
    d       = (x_hat - D(x_hat; s_hat)) / s_hat  -  w_1 s_hat c(x_hat, s_hat)          (Euler)
    x_{i+1} = x_hat + (sigma_{i+1} - s_hat) d
    if sigma_{i+1} > 0:                                                                    (Heun)
        d'      = (x_{i+1} - D(x_{i+1}; sigma_{i+1})) / sigma_{i+1}  -  w_2 sigma_{i+1} c(x_{i+1}, sigma_{i+1})
        x_{i+1} = x_hat + (sigma_{i+1} - s_hat) (d + d') / 2

``c(x, sigma) = grad_x log(d_phi / (1 - d_phi))`` is the discriminator-guidance correction of
the score (:class:`~dgflow.diffusion.guidance.DiscriminatorGuidance`); ``-sigma c`` is its
contribution to ``d``. With the Heun weight ``w_2 = 0`` (the authors' default) the averaged
step carries only ``w_1 / 2`` of the correction, which is why their default ``w_1`` is 2.

"Boosting" (the authors' EDM-G++ sampler): samples whose last log-ratio was negative get
``S_churn = 4`` at every 5th step and a doubled guidance weight at every 2nd step.

Every random number is drawn per sample with :class:`dgflow.rng.SampleNoise`, so a sample's
path depends only on ``(seed, sample id)``, not on the batch it is drawn in.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
from torch import Tensor
from ..progress import progress_bar as tqdm

from ..ratio import check_samples
from ..rng import SampleNoise
from ..rows import per_sample


def edm_sigmas(steps: int = 18, sigma_min: float = 0.002, sigma_max: float = 80.0, rho: float = 7.0,
               round_sigma: Callable[[Tensor], Tensor] | None = None) -> Tensor:
    """EDM's noise levels ``sigma_0 = sigma_max > ... > sigma_{N-1} = sigma_min``, then ``sigma_N = 0`` (float64, ``[N + 1]``)."""
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 2:
        raise ValueError(f"steps must be a whole number >= 2, got {steps!r}")
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
    guidance: Any | None = None,
    seed: int = 0,
    sample_ids: Tensor | Sequence[int] | None = None,
    callback: Callable[[dict[str, Any]], None] | None = None,
    progress: bool = False,
    dtype: torch.dtype | None = torch.float64,
) -> Tensor:
    """Draw samples with EDM's Heun sampler from standard-normal ``latents`` ``[B, *shape]``.

    ``denoiser(x, sigma, labels)`` is an EDM denoiser (``sigma`` ``[B]``); its ``sigma_min`` /
    ``sigma_max`` attributes, when present, narrow the schedule and its ``round_sigma`` rounds
    the noise levels, as in EDM. ``guidance`` (a
    :class:`~dgflow.diffusion.guidance.DiscriminatorGuidance`) adds the DG correction. Churn
    noise is keyed by ``(seed, sample_ids)`` (default ids ``0 .. B-1``). ``callback`` gets
    ``{"i", "x", "sigma", "sigma_hat", "denoised", "log_ratio"}`` after every step.

    ``dtype``: the precision of the sampler's own arithmetic (positions, noise levels, churn
    noise, the Euler and Heun updates); float64 by default, as in EDM's ``edm_sampler``
    (MPS has no float64: there the latents' dtype is used). ``None``: the latents' dtype
    throughout. The denoiser and the discriminator are always called in the latents' dtype
    (their outputs are cast up, as EDM casts ``net(...)`` to float64), and the samples are
    returned in the latents' dtype.
    """
    x0 = _check_latents(latents)
    B, device = len(x0), x0.device
    ids = torch.arange(B) if sample_ids is None else torch.as_tensor(sample_ids, dtype=torch.int64)
    if ids.shape != (B,):
        raise ValueError(f"sample_ids must hold one id per latent ({B}), got shape {tuple(ids.shape)}")
    if labels is not None and len(labels) != B:
        raise ValueError(f"labels must hold one label per latent ({B}), got {len(labels)}")
    for name, value in (("S_churn", S_churn), ("S_min", S_min), ("S_noise", S_noise)):
        if not value >= 0:
            raise ValueError(f"{name} must be >= 0, got {value!r}")
    sigma_min = max(sigma_min, getattr(denoiser, "sigma_min", 0.0))
    sigma_max = min(sigma_max, getattr(denoiser, "sigma_max", math.inf))
    round_sigma = getattr(denoiser, "round_sigma", None)
    net_dtype = x0.dtype
    work = _work_dtype(dtype, x0)
    sigmas = edm_sigmas(steps, sigma_min, sigma_max, rho, round_sigma).to(device, work)
    noise = SampleNoise(seed, ids, device)
    boosting = guidance is not None and guidance.boosting
    w_euler = 0.0 if guidance is None else float(guidance.w_euler)
    w_heun = 0.0 if guidance is None else float(guidance.w_heun)

    def D(x: Tensor, sigma: Tensor) -> Tensor:  # the networks see their own dtype; the sampler works in `work`
        x_net, s_net = x.to(net_dtype), sigma.to(net_dtype)
        out = denoiser(x_net, s_net, labels) if labels is not None else denoiser(x_net, s_net)
        return check_samples(out, B, "the denoiser").to(work)  # a NaN denoiser is named before the discriminator sees it

    def guidance_grad(x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        grad, log_ratio = guidance.log_ratio_grad(x.to(net_dtype), sigma.to(net_dtype), labels)
        return grad.to(work), log_ratio

    x = x0.to(work) * sigmas[0]
    log_ratio = torch.full((B,), math.inf, dtype=torch.float64, device=device)  # nothing boosted before it is measured
    for i in tqdm(range(steps), desc="EDM sampler", disable=None if progress else True, leave=False):
        s_cur, s_next = sigmas[i], sigmas[i + 1]
        churn = torch.full((B,), float(S_churn), dtype=work, device=device)
        s_noise = torch.full((B,), float(S_noise), dtype=work, device=device)
        if boosting and i % guidance.boost_period == 0:
            boosted = log_ratio < 0
            churn[boosted] = guidance.boost_churn
            s_noise[boosted] = guidance.boost_noise  # the authors: 1.000 for boosted samples
        gamma = (churn / steps).clamp(max=math.sqrt(2) - 1) if S_min <= s_cur <= S_max else torch.zeros_like(churn)
        s_hat = s_cur * (1 + gamma)
        if round_sigma is not None:
            s_hat = round_sigma(s_hat)
        x_hat = x
        if bool((s_hat > s_cur).any()):  # increase the noise temporarily
            xi = noise.normal(x.shape[1:], step=i, stream="churn", dtype=work)
            x_hat = x + per_sample((s_hat**2 - s_cur**2).clamp(min=0).sqrt() * s_noise, x) * xi
        denoised = D(x_hat, s_hat)
        d = (x_hat - denoised) / per_sample(s_hat, x)  # Euler step
        if w_euler != 0:
            grad, log_ratio = guidance_grad(x_hat, s_hat)
            w = torch.full((B,), w_euler, dtype=work, device=device)
            if boosting and i % guidance.boost_weight_period == 0:
                w[log_ratio < 0] *= 2
            d = d - per_sample(w * s_hat, x) * grad
        x_next = x_hat + per_sample(s_next - s_hat, x) * d
        if s_next > 0:  # second-order (Heun) correction
            s_next_b = s_next.expand(B)
            d_prime = (x_next - D(x_next, s_next_b)) / s_next
            if w_heun != 0:
                grad2, _ = guidance_grad(x_next, s_next_b)
                d_prime = d_prime - w_heun * s_next * grad2
            x_next = x_hat + per_sample(s_next - s_hat, x) * (0.5 * d + 0.5 * d_prime)
        x = x_next
        if callback is not None:
            callback({"i": i, "x": x, "sigma": s_cur, "sigma_hat": s_hat, "denoised": denoised, "log_ratio": log_ratio})
    return x.to(net_dtype)


def _work_dtype(dtype: torch.dtype | None, latents: Tensor) -> torch.dtype:
    """The sampler's arithmetic dtype: ``dtype``, or the latents' where it is None or the device lacks float64."""
    if dtype is None or (dtype == torch.float64 and latents.device.type == "mps"):
        return latents.dtype
    if not (isinstance(dtype, torch.dtype) and dtype.is_floating_point):
        raise TypeError(f"dtype must be a floating-point torch.dtype (EDM: torch.float64) or None, got {dtype!r}")
    return dtype


def _check_latents(latents: Tensor) -> Tensor:
    if not isinstance(latents, Tensor):
        raise TypeError(f"latents must be a torch.Tensor of standard-normal draws [B, *shape], got {type(latents).__name__}")
    if latents.ndim < 2:
        raise ValueError(f"latents must be shaped [B, *shape] (at least 2-D), got shape {tuple(latents.shape)}; "
                         "for one sample use latents[None]")
    if not latents.is_floating_point():
        raise TypeError(f"latents must be floating point, got {latents.dtype}")
    if not torch.isfinite(latents).all():
        raise ValueError("latents contain NaN or inf")
    return latents
