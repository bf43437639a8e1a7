"""Discriminator Guidance (Kim et al., ICML 2023): correct a diffusion model's score with a discriminator.

A time-dependent discriminator ``d_phi(x, sigma) = P(real | x, sigma)``, trained with BCE on
real data (label 1) and model samples (label 0) both noised to ``sigma``, estimates at its
optimum ``d / (1 - d) = p_data(x; sigma) / p_model(x; sigma)`` for the noisy marginals. So

    grad log p_data(x; sigma) = grad log p_model(x; sigma) + c(x, sigma),
    c(x, sigma) = grad_x log( d_phi(x, sigma) / (1 - d_phi(x, sigma)) ),

and sampling with the corrected score ``s_theta + w c`` (``w = 1``) follows the data's
marginals even where the score model ``s_theta = (D_theta - x) / sigma^2`` is wrong.

The discriminator here returns the **logit** ``log(d / (1 - d))`` directly, the project's
convention (``d(x) ~ log mu / p_g``); ``sigmoid`` of it is the authors' ``d_phi``.

Clipping (``clip``, default ``1e-5``, the authors' value): the authors clip ``d_phi`` to
``[clip, 1 - clip]`` before taking ``log(d / (1 - d))``, which is the logit clamped to
``[-L, L]`` with ``L = log((1 - clip) / clip)`` (11.51 for 1e-5). Where the discriminator is
saturated (``|logit| > L``) the clamp is flat, so the guidance gradient there is **zero**: a
discriminator that is certain gives no direction (and an over-confident one, whose logit
gradient far from its decision boundary is large and meaningless, cannot throw samples
away). dgflow follows the authors by default; ``clip=None`` uses the raw logit everywhere.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from ..checks import check_int, check_labels, check_positive, check_sample_ids, resolve_device
from ..progress import progress_bar as tqdm
from ..rng import SampleNoise
from ..rows import per_sample
from ..target import eval_mode
from .denoisers import vp_time_to_sigma
from .sampler import Correction, sample_edm

# The authors apply guidance for VP time t >= 0.01, i.e. sigma >= 0.0447 (no upper limit).
DG_SIGMA_MIN = vp_time_to_sigma(0.01)


@dataclass(frozen=True)
class DiscriminatorGuidance:
    """The DG correction ``w c(x, sigma)`` of :func:`~dgflow.diffusion.sample_edm` (its settings and ``c``).

    ``discriminator(x, sigma, labels)`` returns the logit ``log(d / (1 - d))`` (``[B]`` or
    ``[B, 1]``) for noisy ``x`` in the denoiser's (EDM) space. ``w_euler`` / ``w_heun`` weight
    the correction in the Euler and Heun stages (the authors' ``dg_weight_1st_order`` = 2 and
    ``dg_weight_2nd_order`` = 0); ``sigma_range`` is where it is applied (elsewhere ``c = 0``).
    ``boosting``: every ``boost_period`` steps samples with a negative log-ratio get
    ``S_churn = boost_churn`` with churn noise scale ``S_noise = boost_noise`` (the authors: 4 and
    1.000, whatever the sampler's ``S_noise``), and every ``boost_weight_period`` steps their
    weight is doubled. ``clip``: the log-ratio is ``clamp(logit, -L, L)``, ``L = log((1 - clip) / clip)``
    (the authors' clipping of ``d_phi`` to ``[clip, 1 - clip]``; zero guidance where ``|logit| > L``);
    ``None``: the raw logit.
    """

    discriminator: Callable[..., Tensor]
    w_euler: float = 2.0
    w_heun: float = 0.0
    sigma_range: tuple[float, float] = (DG_SIGMA_MIN, math.inf)
    boosting: bool = False
    boost_churn: float = 4.0
    boost_period: int = 5
    boost_weight_period: int = 2
    boost_noise: float = 1.0
    clip: float | None = 1e-5

    def __post_init__(self) -> None:
        if not callable(self.discriminator):
            raise TypeError(f"discriminator must be callable as d(x, sigma, labels) -> logit, got "
                            f"{type(self.discriminator).__name__}")
        for name in ("w_euler", "w_heun", "boost_churn", "boost_noise"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
        lo, hi = (float(v) for v in self.sigma_range)
        if not 0 <= lo < hi:
            raise ValueError(f"sigma_range must be (low, high) with 0 <= low < high, got {self.sigma_range!r}")
        object.__setattr__(self, "sigma_range", (lo, hi))  # frozen: set once, normalised
        check_int("boost_period", self.boost_period, 1)
        check_int("boost_weight_period", self.boost_weight_period, 1)
        check_positive("boost_noise", self.boost_noise, allow_zero=True)
        if self.clip is not None:
            c = self.clip
            if isinstance(c, bool) or not isinstance(c, (int, float)) or not 0 < c < 0.5:
                raise ValueError(f"clip must be a number in (0, 0.5) (the authors' 1e-5) or None (no clipping), "
                                 f"got {c!r}")

    def correction(self, latents: Tensor, labels: Tensor | None = None) -> DGCorrection:
        """The guidance of one batch of :func:`~dgflow.diffusion.sample_edm` (networks in ``latents``' dtype)."""
        return DGCorrection(self, latents, labels)

    @property
    def logit_bound(self) -> float:
        """``L = log((1 - clip) / clip)``: the log-ratio is clamped to ``[-L, L]`` (``inf`` without clipping)."""
        return math.inf if self.clip is None else math.log((1 - self.clip) / self.clip)

    def log_ratio_grad(self, x: Tensor, sigma: Tensor, labels: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """``(grad_x log(d/(1-d)), log(d/(1-d)))`` at ``(x, sigma)``: ``[B, *shape]`` and ``[B]`` (float64).

        ``x`` and ``sigma`` are passed to the discriminator as given. The log-ratio is the logit
        clamped to ``[-L, L]`` (see ``clip``), so its gradient is 0 where ``|logit| > L``. Outside
        ``sigma_range`` the gradient is 0 and the log-ratio ``+inf`` (never boosted); the range is
        checked **per sample** (the authors check the batch's smallest noise level and guide the
        whole batch or none of it: the two differ only when boosted samples straddle ``sigma_range[0]``).
        """
        lo, hi = self.sigma_range
        inside = (sigma >= lo) & (sigma <= hi)
        grad = torch.zeros_like(x)
        log_ratio = torch.full((len(x),), math.inf, dtype=torch.float64, device=x.device)
        if not bool(inside.any()):
            return grad, log_ratio
        idx = torch.nonzero(inside).flatten()
        with torch.enable_grad():
            xi = x[idx].detach().requires_grad_(True)
            args = (xi, sigma[idx]) if labels is None else (xi, sigma[idx], labels[idx])
            logit = self.discriminator(*args)
            if logit.shape not in ((len(idx),), (len(idx), 1)):
                raise ValueError(f"the discriminator must return one logit per sample ([B] or [B, 1]), got shape "
                                 f"{tuple(logit.shape)} for {len(idx)} inputs")
            logit = logit.reshape(-1)
            if self.clip is not None:
                bound = self.logit_bound
                logit = logit.clamp(-bound, bound)
            (g,) = torch.autograd.grad(logit.sum(), xi)
        if not torch.isfinite(g).all():
            raise FloatingPointError("the discriminator's gradient holds NaN or inf; check its inputs and weights")
        grad[idx] = g.to(x.dtype)
        log_ratio[idx] = logit.detach().double()
        return grad, log_ratio


class DGCorrection(Correction):
    """Discriminator Guidance in one batch of EDM's sampler: the DG authors' additions to ``edm_sampler``.

    Euler stage ``d -= w_1 t_hat c(x_hat, t_hat)``, Heun stage ``d' -= w_2 t_next c(x_next, t_next)``
    (``d = -t * score``, so this adds ``w c`` to the score). Boosting: samples whose last log-ratio
    was negative get ``S_churn = boost_churn``, ``S_noise = boost_noise`` (4 and 1) every ``boost_period``
    (5) steps and weight ``2 w_1`` every ``boost_weight_period`` (2). The discriminator runs in the
    latents' dtype; the terms are returned in the sampler's.
    """

    def __init__(self, guidance: DiscriminatorGuidance, latents: Tensor, labels: Tensor | None = None):
        self.guidance, self.labels, self.net_dtype = guidance, labels, latents.dtype
        # the last log-ratio per sample; +inf until measured, so nothing is boosted before
        self.log_ratio = torch.full((len(latents),), math.inf, dtype=torch.float64, device=latents.device)

    def churn(self, i: int, S_churn: Tensor, S_noise: Tensor) -> tuple[Tensor, Tensor]:
        g = self.guidance
        if not (g.boosting and i % g.boost_period == 0):
            return S_churn, S_noise
        boosted = self.log_ratio < 0
        return S_churn.masked_fill(boosted, g.boost_churn), S_noise.masked_fill(boosted, g.boost_noise)

    def euler(self, i: int, x_hat: Tensor, t_hat: Tensor) -> Tensor | float:
        g = self.guidance
        if g.w_euler == 0:
            return 0.0
        c, self.log_ratio = self._c(x_hat, t_hat)
        w = torch.full_like(t_hat, float(g.w_euler))
        if g.boosting and i % g.boost_weight_period == 0:
            w = torch.where(self.log_ratio < 0, 2 * w, w)
        return per_sample(w * t_hat, x_hat) * c

    def heun(self, i: int, x_next: Tensor, t_next: Tensor) -> Tensor | float:
        if self.guidance.w_heun == 0:
            return 0.0
        c, _ = self._c(x_next, t_next)
        return per_sample(float(self.guidance.w_heun) * t_next, x_next) * c

    def info(self) -> dict[str, Tensor]:
        return {"log_ratio": self.log_ratio}

    def _c(self, x: Tensor, sigma: Tensor) -> tuple[Tensor, Tensor]:
        c, log_ratio = self.guidance.log_ratio_grad(x.to(self.net_dtype), sigma.to(self.net_dtype), self.labels)
        return c.to(x.dtype), log_ratio


@dataclass
class GuideResult:
    """Samples of :func:`dgflow.guide` (on the CPU) with their ids, labels and the settings used."""

    x: Tensor
    sample_ids: Tensor
    labels: Tensor | None
    options: dict[str, Any] = field(default_factory=dict)


def guide(
    denoiser: Callable[..., Tensor],
    discriminator: Callable[..., Tensor] | None = None,
    n: int | None = None,
    *,
    shape: Sequence[int] | None = None,
    latents: Tensor | None = None,
    labels: Tensor | None = None,
    w_euler: float = 2.0,
    w_heun: float = 0.0,
    sigma_range: tuple[float, float] = (DG_SIGMA_MIN, math.inf),
    boosting: bool = False,
    clip: float | None = 1e-5,
    boost_noise: float = 1.0,
    steps: int = 18,
    sigma_min: float = 0.002,
    sigma_max: float = 80.0,
    rho: float = 7.0,
    S_churn: float = 0.0,
    S_min: float = 0.0,
    S_max: float = math.inf,
    S_noise: float = 1.0,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    seed: int = 0,
    sample_ids: Tensor | Sequence[int] | None = None,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    dtype: torch.dtype | None = torch.float64,
) -> GuideResult:
    """Sample a diffusion model with EDM's Heun sampler, guided by a time-dependent discriminator.

    ``denoiser(x, sigma[, labels])`` is any EDM-form denoiser (see
    :func:`dgflow.diffusion.from_epsilon_vp` for epsilon-prediction networks);
    ``discriminator(x, sigma[, labels])`` returns ``log(d / (1 - d))``. Without a
    discriminator (or with both weights 0) this is the plain EDM sampler. ``n`` samples of
    ``shape`` are drawn from latents keyed by ``(seed, sample id)``, or ``latents`` (standard
    normal, ``[N, *shape]``) are given; ``labels`` (one per sample) make it conditional.
    Results do not depend on ``batch_size``.

    As the authors' code: ``clip=1e-5`` clamps the log-ratio to ``+-11.51`` (no guidance where the
    discriminator is saturated; ``None``: the raw logit), boosted samples get churn noise scale
    ``boost_noise=1.0`` whatever ``S_noise`` is, and the sampler's arithmetic runs in
    ``dtype=torch.float64`` (EDM's choice; the networks run in the latents' dtype, float32 for
    drawn latents; ``None``: the latents' dtype throughout). See :class:`DiscriminatorGuidance`.
    """
    check_int("batch_size", batch_size, 1)
    if latents is None:
        if n is None or shape is None:
            raise ValueError("pass latents [N, *shape], or n (how many samples) and shape (one sample's shape)")
        check_int("n", n, 1)
    else:
        if not isinstance(latents, Tensor) or latents.ndim < 2:
            raise ValueError("latents must be a tensor shaped [N, *shape] of standard-normal draws")
        if n is not None and n != len(latents):
            raise ValueError(f"n={n} disagrees with the {len(latents)} latents given")
        if shape is not None and tuple(shape) != tuple(latents.shape[1:]):
            raise ValueError(f"shape {tuple(shape)} disagrees with latents of shape {tuple(latents.shape)}")
        n, shape = len(latents), tuple(latents.shape[1:])
    ids = torch.arange(n) if sample_ids is None else check_sample_ids(sample_ids, n, per="sample")
    labels = check_labels(labels, n)
    guidance = None
    if discriminator is not None and (w_euler != 0 or w_heun != 0):
        guidance = DiscriminatorGuidance(discriminator, w_euler, w_heun, tuple(sigma_range), boosting,
                                         boost_noise=boost_noise, clip=clip)
    elif boosting:
        raise ValueError("boosting needs a discriminator and a nonzero guidance weight")
    device = resolve_device(device, denoiser, discriminator)
    settings = dict(steps=steps, sigma_min=sigma_min, sigma_max=sigma_max, rho=rho, S_churn=S_churn, S_min=S_min,
                    S_max=S_max, S_noise=S_noise)
    xs = []
    networks = [m for m in (denoiser, discriminator) if m is not None]
    with eval_mode(*networks), torch.no_grad(), tqdm(total=n, desc="DG sampler" if guidance else "EDM sampler",
                                                      disable=None if progress else True, leave=False) as bar:
        for index in torch.arange(n).split(batch_size):  # eval mode, frozen weights: as refine and select
            if latents is None:
                z = SampleNoise(seed, ids[index], device).normal(tuple(shape), stream="latents")
            else:
                z = latents[index].to(device)
            lab = None if labels is None else labels[index].to(device)
            x = sample_edm(denoiser, z, labels=lab, guidance=guidance, seed=seed, sample_ids=ids[index],
                           callback=callback, dtype=dtype, **settings)
            xs.append(x.cpu())
            bar.update(len(index))
    options = {**settings, "w_euler": w_euler, "w_heun": w_heun, "sigma_range": list(sigma_range),
               "boosting": boosting, "clip": clip, "boost_noise": boost_noise,
               "dtype": None if dtype is None else str(dtype).removeprefix("torch."), "guided": guidance is not None}
    return GuideResult(x=torch.cat(xs), sample_ids=ids, labels=labels, options=options)
