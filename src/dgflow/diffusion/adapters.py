"""Diffusion models from other code bases as dgflow denoisers, and DG for other samplers.

dgflow's samplers call an EDM **denoiser** ``D(x, sigma, labels=None) ~ E[x_0 | x]`` with
``x = x_0 + sigma n`` (see :mod:`dgflow.diffusion.denoisers`).

* :func:`from_diffusers` -- a diffusers UNet (or any ``net(x_vp, t, class_labels=...)``) with the
  variance-preserving schedule ``alphas_cumprod`` of its scheduler. With ``x_vp = sqrt(abar) x_0 +
  sqrt(1 - abar) eps``, ``sigma^2 = (1 - abar) / abar`` and ``x_vp = x / sqrt(1 + sigma^2)``, the
  three ``prediction_type`` s give ::

      epsilon:       D = x - sigma eps_hat
      sample:        D = x0_hat
      v_prediction:  D = sqrt(abar) x_vp - sqrt(1 - abar) v_hat      (v = sqrt(abar) eps - sqrt(1 - abar) x_0)

* :func:`from_k_diffusion` -- a k-diffusion denoiser ``model(x, sigma, **extra)`` is already in
  EDM form; labels go in by keyword.
* :func:`guided_denoiser` -- Discriminator Guidance as a denoiser, so any sampler that calls
  ``model(x, sigma, **kw)`` (k-diffusion's ``sample_euler`` / ``sample_heun`` / DPM-Solver, or a
  diffusers scheduler through :func:`to_diffusers`) samples the corrected score. The corrected
  score ``(D - x) / sigma^2 + w c`` is the score of the denoiser ::

      D_w(x, sigma) = D(x, sigma) + w sigma^2 c(x, sigma),   c = grad_x log(d / (1 - d)),

  so a Heun sampler on ``D_w`` equals ``dgflow.guide(D, d, w_euler=w, w_heun=w)``.
* :func:`to_diffusers` -- the inverse of :func:`from_diffusers`: a dgflow denoiser as a
  ``model(sample, timestep, class_labels=None)`` predicting what the scheduler's ``prediction_type`` asks for.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import Tensor, nn

from ..byo import reachable_modules
from ..ratio import unwrap_output
from ..rows import per_sample
from .denoisers import EpsilonVPDenoiser, as_sigma
from .guidance import DG_SIGMA_MIN, DiscriminatorGuidance

PREDICTION_TYPES = ("epsilon", "v_prediction", "sample")


def _model_dtype(model: Any, like: Tensor) -> torch.dtype:
    """The dtype of ``model``'s first floating parameter (``like``'s dtype without one)."""
    for m in reachable_modules(model):
        for p in m.parameters():
            if p.is_floating_point():
                return p.dtype
    return like.dtype


def _labels_kw(label_key: str, labels: Tensor | None) -> dict[str, Tensor]:
    return {} if labels is None else {label_key: labels}


def _scheduler_setting(scheduler: Any, name: str) -> Any:
    config = getattr(scheduler, "config", None)
    if config is None:
        return None
    if isinstance(config, dict):
        return config.get(name)
    return getattr(config, name, None)


class VPDenoiser(EpsilonVPDenoiser):
    """A VP network predicting ``epsilon``, ``v`` or ``x_0`` as an EDM denoiser (see :func:`from_diffusers`)."""

    def __init__(self, net: Callable[..., Any], alphas_cumprod: Tensor, prediction_type: str = "epsilon",
                 timestep: str = "nearest", label_key: str = "class_labels"):
        if prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {prediction_type!r}")
        super().__init__(net, alphas_cumprod, timestep=timestep)
        self.prediction_type = prediction_type
        self.label_key = label_key
        self.found = nn.ModuleList(reachable_modules(net))  # a lambda around the UNet: still eval/frozen

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        sigma = as_sigma(sigma, x)
        t = self.vp_time(sigma)
        if self.timestep == "nearest":
            sigma = self.sigmas.to(x.device, x.dtype)[t]  # the noise level the network is told about
        s = per_sample(sigma, x)
        sqrt_abar = 1 / (1 + s**2).sqrt()          # x_vp = sqrt(abar) x
        x_vp = x * sqrt_abar
        dtype = _model_dtype(self.eps_model, x)
        out = unwrap_output(self.eps_model(x_vp.to(dtype), t, **_labels_kw(self.label_key, labels)))
        if not isinstance(out, Tensor) or out.shape != x.shape:
            raise ValueError(f"the diffusion network returned {type(out).__name__} "
                             f"{tuple(out.shape) if isinstance(out, Tensor) else ''} for an input of shape "
                             f"{tuple(x.shape)}; it must return a tensor (or .sample / a tuple holding one) "
                             "shaped like its input")
        out = out.to(x.dtype)
        if self.prediction_type == "epsilon":
            return x - s * out
        if self.prediction_type == "sample":
            return out
        return sqrt_abar * x_vp - s * sqrt_abar * out  # v: x0 = sqrt(abar) x_vp - sqrt(1 - abar) v


def from_diffusers(unet: Callable[..., Any], scheduler: Any, *, prediction_type: str | None = None,
                   timestep: str = "nearest", label_key: str = "class_labels") -> VPDenoiser:
    """A diffusers model as an EDM denoiser ``D(x, sigma, labels=None)`` for :func:`dgflow.guide`.

    ``unet(x_vp, t, class_labels=labels)`` (e.g. ``UNet2DModel``; an output's ``.sample`` or a
    tuple's first element is used); ``scheduler`` gives ``alphas_cumprod`` (any schedule: linear,
    cosine, scaled-linear, ...) and ``config.prediction_type`` (``epsilon``, ``v_prediction`` or
    ``sample``; ``prediction_type=`` overrides it). ``timestep="nearest"``: ``t`` is the integer
    timestep whose noise level is nearest to ``sigma`` in log scale (discrete-time models; dgflow's
    sampler rounds its noise levels to them); ``"fractional"``: a real-valued timestep interpolated
    in ``log sigma`` (continuous-time models). ``label_key``: the keyword that receives class labels.
    For a continuous VP SDE without ``alphas_cumprod`` use :func:`~dgflow.diffusion.from_epsilon_vp`
    with ``beta_min`` / ``beta_max``.
    """
    abar = getattr(scheduler, "alphas_cumprod", None)
    if abar is None:
        raise ValueError(f"{type(scheduler).__name__} has no alphas_cumprod; pass a scheduler of the VP family "
                         "(DDPMScheduler, DDIMScheduler, ...) or use dgflow.diffusion.from_epsilon_vp(net, "
                         "beta_min=..., beta_max=...) for a continuous VP SDE")
    prediction_type = prediction_type or _scheduler_setting(scheduler, "prediction_type") or "epsilon"
    return VPDenoiser(unet, torch.as_tensor(abar), prediction_type, timestep, label_key)


class KDiffusionDenoiser(nn.Module):
    """A k-diffusion denoiser ``model(x, sigma, **extra)`` as ``D(x, sigma, labels=None)`` (see :func:`from_k_diffusion`)."""

    def __init__(self, model: Callable[..., Any], label_key: str = "class_cond", **extra: Any):
        super().__init__()
        self.model = model
        self.label_key = label_key
        self.extra = extra
        self.found = nn.ModuleList(reachable_modules(model))
        for name in ("sigma_min", "sigma_max"):  # a discrete schedule's range narrows dgflow's sampler
            value = getattr(model, name, None)
            if value is not None:
                setattr(self, name, float(value))

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None) -> Tensor:
        return unwrap_output(self.model(x, as_sigma(sigma, x), **self.extra, **_labels_kw(self.label_key, labels)))


def from_k_diffusion(model: Callable[..., Any], *, label_key: str = "class_cond", **extra: Any) -> KDiffusionDenoiser:
    """A k-diffusion denoiser (``K.layers.Denoiser``, ``K.external.CompVisDenoiser``, ...), called
    ``model(x, sigma, **extra, label_key=labels)``, as a dgflow denoiser. k-diffusion's models already
    return ``E[x_0 | x]`` in the EDM parametrisation, so nothing is rescaled."""
    return KDiffusionDenoiser(model, label_key, **extra)


class GuidedDenoiser(nn.Module):
    """``D_w(x, sigma) = D(x, sigma) + w sigma^2 grad_x log(d / (1 - d))`` (see :func:`guided_denoiser`)."""

    def __init__(self, denoiser: Callable[..., Tensor], discriminator: Callable[..., Tensor], w: float = 1.0,
                 sigma_range: tuple[float, float] = (DG_SIGMA_MIN, math.inf)):
        super().__init__()
        if not callable(denoiser):
            raise TypeError(f"denoiser must be callable as D(x, sigma[, labels]), got {type(denoiser).__name__}")
        self.denoiser = denoiser
        self.guidance = DiscriminatorGuidance(discriminator, w_euler=w, w_heun=w, sigma_range=sigma_range)
        self.w = float(w)
        self.found = nn.ModuleList({id(m): m for obj in (denoiser, discriminator)
                                    for m in reachable_modules(obj)}.values())
        for name in ("sigma_min", "sigma_max", "round_sigma"):
            value = getattr(denoiser, name, None)
            if value is not None:
                setattr(self, name, value)

    def forward(self, x: Tensor, sigma: Tensor | float, labels: Tensor | None = None,
                class_labels: Tensor | None = None) -> Tensor:
        labels = class_labels if labels is None else labels
        sigma = as_sigma(sigma, x)
        denoised = self.denoiser(x, sigma) if labels is None else self.denoiser(x, sigma, labels)
        if self.w == 0:
            return denoised
        grad, _ = self.guidance.log_ratio_grad(x, sigma, labels)
        return denoised + per_sample(self.w * sigma**2, x) * grad


def guided_denoiser(denoiser: Callable[..., Tensor], discriminator: Callable[..., Tensor], w: float = 1.0, *,
                    sigma_range: tuple[float, float] = (DG_SIGMA_MIN, math.inf)) -> GuidedDenoiser:
    """Discriminator Guidance folded into the denoiser: ``model(x, sigma, labels=None)`` (labels also as
    ``class_labels=``) returning ``D(x, sigma) + w sigma^2 grad_x log(d / (1 - d))``.

    Any sampler of the EDM / k-diffusion form accepts it (``K.sampling.sample_heun(model, x, sigmas,
    extra_args={"labels": y})``); a Heun sampler on it equals ``dgflow.guide(denoiser, discriminator,
    w_euler=w, w_heun=w)``. ``discriminator(x, sigma[, labels])`` returns the logit ``log(d / (1 - d))``
    (wrap a probability with :func:`dgflow.from_probability`); ``sigma_range``: where guidance acts.
    Call ``.eval()`` and ``.requires_grad_(False)`` on it before sampling (the modules it reaches are registered).
    """
    return GuidedDenoiser(denoiser, discriminator, w, sigma_range)


class DiffusersModel(nn.Module):
    """A dgflow denoiser seen by a diffusers scheduler (see :func:`to_diffusers`)."""

    def __init__(self, denoiser: Callable[..., Tensor], scheduler: Any, prediction_type: str | None = None):
        super().__init__()
        self.denoiser = denoiser
        self.found = nn.ModuleList(reachable_modules(denoiser))
        abar = getattr(scheduler, "alphas_cumprod", None)
        if abar is None:
            raise ValueError(f"{type(scheduler).__name__} has no alphas_cumprod; to_diffusers needs a VP scheduler")
        self.register_buffer("alphas_cumprod", torch.as_tensor(abar, dtype=torch.float64).flatten())
        self.prediction_type = prediction_type or _scheduler_setting(scheduler, "prediction_type") or "epsilon"
        if self.prediction_type not in PREDICTION_TYPES:
            raise ValueError(f"prediction_type must be one of {', '.join(PREDICTION_TYPES)}, got {self.prediction_type!r}")

    def forward(self, sample: Tensor, timestep: Tensor | int, class_labels: Tensor | None = None) -> Tensor:
        t = torch.as_tensor(timestep, device=self.alphas_cumprod.device).long().expand(len(sample))
        abar = self.alphas_cumprod[t].to(sample.device, sample.dtype)
        sigma = ((1 - abar) / abar).sqrt()
        a, b = per_sample(abar.sqrt(), sample), per_sample((1 - abar).sqrt(), sample)
        x = sample / a                                                    # EDM's x = x_vp / sqrt(abar)
        x0 = self.denoiser(x, sigma) if class_labels is None else self.denoiser(x, sigma, class_labels)
        if self.prediction_type == "sample":
            return x0
        eps = (sample - a * x0) / b
        return eps if self.prediction_type == "epsilon" else a * eps - b * x0


def to_diffusers(denoiser: Callable[..., Tensor], scheduler: Any, *, prediction_type: str | None = None) -> DiffusersModel:
    """A dgflow denoiser (e.g. a :func:`guided_denoiser`) as ``model(sample, timestep, class_labels=None)``
    for a diffusers scheduler loop: it returns the ``epsilon``, ``v`` or ``x_0`` prediction the
    scheduler's ``config.prediction_type`` asks for, at the scheduler's integer ``timestep``::

        model = to_diffusers(guided_denoiser(from_diffusers(unet, scheduler), disc), scheduler)
        for t in scheduler.timesteps:
            x = scheduler.step(model(x, t), t, x).prev_sample
    """
    return DiffusersModel(denoiser, scheduler, prediction_type)
