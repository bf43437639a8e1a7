"""The public entry points: :func:`refine` (move samples), :func:`select` (keep samples), :func:`autotune`
(only the pilot of ``refine``), :func:`generate` and :func:`normalize`."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from . import loop
from .checks import check_int, check_labels, check_sample_ids, param_dtype, resolve_device
from .priors import Prior, make_prior
from .ratio import DensityRatio, self_normalized
from .refiners import REFINERS
from .refiners.base import build
from .rng import SampleNoise
from .selectors import SELECTORS, Proposals, SelectResult
from .speed import SpeedOptions, speed_options
from .target import Target, accelerate, eval_mode
from .tuning import tune


@dataclass
class RefineResult:
    """Refined latents and samples, and the states kept every ``save_interval`` steps.

    ``z`` / ``x`` / ``logits``: the final latents, samples and logits (on the CPU).
    ``steps``: the step indices kept; ``z_history[k]`` (latent space only), ``x_history[k]``
    (when ``keep_samples``) and ``logit_history[k]`` hold the state after ``steps[k]`` steps.
    In data space ``z`` is the unchanged starting latent and ``x`` the refined sample.
    """

    z: Tensor
    x: Tensor
    logits: Tensor
    steps: list[int]
    z_history: Tensor | None
    x_history: Tensor | None
    logit_history: Tensor
    sample_ids: Tensor
    method: str
    space: str
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)


def refine(
    generator: Callable[..., Tensor],
    discriminator: Callable[..., Tensor] | Sequence[Callable[..., Tensor]],
    z: Tensor | None = None,
    method: str = "dgflow",
    *,
    n: int | None = None,
    latent_shape: Sequence[int] | None = None,
    prior: str | Prior | Any = "normal",
    labels: Tensor | None = None,
    corrector: Callable[..., Tensor] | Sequence[Callable[..., Tensor]] | None = None,
    space: str = "latent",
    save_interval: int | None = 5,
    keep_samples: bool = True,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    seed: int = 0,
    sample_ids: Tensor | Sequence[int] | None = None,
    progress: bool = True,
    callback: Callable[[dict[str, Any]], None] | None = None,
    speed: SpeedOptions | dict[str, Any] | None = None,
    **options: Any,
) -> RefineResult:
    """Refine generator samples with ``method`` (``"dgflow"``, ``"ddls"`` or ``"dot"``).

    ``discriminator`` returns the logit ``d(x) ~ log(mu(x)/p_g(x))`` (``[B]`` or ``[B, 1]``);
    ``corrector`` adds density-ratio-corrector terms to it. ``z`` (``[N, *latent_shape]``) are
    the starting latents; without it ``n`` latents are drawn from ``prior``. Sample ``i``
    uses its own random stream keyed by ``(seed, sample_ids[i])``, so results do not depend
    on ``batch_size``. ``options`` go to the method (e.g. ``f``, ``eta``, ``gamma``, ``steps``);
    ``eta="auto"`` / ``steps="auto"`` (DDLS ``eps``, DOT ``lr``) are chosen once from a pilot run,
    optionally against ``heldout=`` real samples, and explained in ``info["auto"]``
    (:mod:`dgflow.tuning`). ``callback`` receives ``{"step", "state", "info", "sample_ids", "target"}``
    after every step of every batch (:func:`dgflow.loop.run`).
    ``speed``: bf16 autocast, ``torch.compile``, channels-last, micro-batches under a memory cap
    (:class:`dgflow.speed.SpeedOptions`, e.g. ``speed={"autocast": "bf16", "max_batch_size": 128}``).
    """
    if isinstance(method, str) and method.lower() in SELECTORS:
        raise ValueError(f"{method!r} selects samples rather than moving them: call dgflow.select(..., method={method!r})")
    refiner = build(REFINERS, "refinement", method, options)
    if space not in ("latent", "data"):
        raise ValueError(f"space must be 'latent' or 'data', got {space!r}")
    check_int("batch_size", batch_size, 1)
    speed = speed_options(speed)
    if save_interval is not None:
        check_int("save_interval", save_interval, 1)
    ratio = DensityRatio(discriminator, corrector)
    device = resolve_device(device, generator, ratio)
    z, prior_obj, ids = _latents(z, n, latent_shape, prior, seed, sample_ids, param_dtype(generator))
    labels = check_labels(labels, len(z))
    latent_target = Target(generator, ratio, prior_obj)
    target = latent_target if space == "latent" else Target(None, ratio, None)

    def draw(stream: str, count: int) -> tuple[Tensor, Target]:
        noise = SampleNoise(seed, torch.arange(count), device)
        z0 = prior_obj.draw(noise, stream=stream)
        lab = None if labels is None else labels.to(device)[noise.randint(len(labels), stream=stream + "-labels")]
        with torch.no_grad():
            pos = z0 if space == "latent" else latent_target.bind(lab).sample(z0)
        return pos, target.bind(lab)

    with eval_mode(generator, ratio):
        probe = labels[:2].to(device) if labels is not None else None
        latent_target, target = accelerate(latent_target, target, speed, z[:2].to(device), probe)
        # shared statistics and "auto" choices: once, before any batch
        refiner, info = refiner.prepare(draw)
        if refiner.wants_auto():
            refiner, evidence = tune(refiner, draw)
            info.update(evidence)
        kept = loop.kept_steps(refiner.steps, save_interval)
        out = loop.run(refiner, target, z, seed=seed, sample_ids=ids, kept=kept, device=device, labels=labels,
                       generator=latent_target if space == "data" else None, batch_size=batch_size,
                       keep_samples=keep_samples, callback=callback, progress=progress, desc=f"refine ({method})")
    if out.acceptance_rate is not None:
        info["acceptance_rate"] = out.acceptance_rate
    return RefineResult(
        z=out.z, x=out.x, logits=out.logits, steps=out.steps, z_history=out.z_history, x_history=out.x_history,
        logit_history=out.logit_history, sample_ids=ids, method=refiner.name, space=space,
        options=refiner.options(), info=info)


def autotune(generator: Any, discriminator: Any, method: str = "dgflow", *, labels: Tensor | None = None,
             **kwargs: Any) -> tuple[dict[str, Any], dict[str, Any]]:
    """Only the pilot of ``dgflow.refine(..., eta="auto", steps="auto")``: returns the method's options with
    every ``"auto"`` replaced by the value chosen, and the evidence (``info["auto"]``).

    For runs split over several ``refine`` calls (the config runner, several processes): tune once,
    then pass the returned options to every call. ``kwargs`` are :func:`refine`'s (``latent_shape``,
    ``prior``, ``corrector``, ``seed``, ``device``, the method's options, ...); ``labels``: the classes of a
    conditional model.
    """
    for key in ("z", "n", "sample_ids", "save_interval", "keep_samples"):
        if key in kwargs:
            raise TypeError(f"autotune takes no {key!r}: it draws its own pilot samples")
    n = 1 if labels is None else len(labels)
    res = refine(generator, discriminator, method=method, n=n, labels=labels, save_interval=None,
                 keep_samples=False, **kwargs)
    options = dict(res.options)
    options.pop("heldout", None)
    options.pop("features", None)
    return options, res.info.get("auto", {})


def generate(
    generator: Callable[..., Tensor],
    n: int,
    *,
    latent_shape: Sequence[int] | None = None,
    prior: str | Prior | Any = "normal",
    labels: Tensor | None = None,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    seed: int = 0,
    sample_ids: Tensor | Sequence[int] | None = None,
) -> tuple[Tensor, Tensor]:
    """Base samples ``(z, x = g(z))`` with the same seeded latents :func:`refine` starts from."""
    check_int("batch_size", batch_size, 1)
    device = resolve_device(device, generator)
    z, prior_obj, _ = _latents(None, n, latent_shape, prior, seed, sample_ids, param_dtype(generator))
    labels = check_labels(labels, n)
    target = Target(generator, None, prior_obj)  # type: ignore[arg-type]
    xs = []
    with eval_mode(generator), torch.no_grad():
        for index in torch.arange(n).split(batch_size):
            t = target.bind(None if labels is None else labels[index].to(device))
            xs.append(t.sample(z[index].to(device)).cpu())
    return z, torch.cat(xs)


def normalize(
    generator: Callable[..., Tensor],
    discriminator: Callable[..., Tensor] | Sequence[Callable[..., Tensor]],
    n: int = 10_000,
    *,
    latent_shape: Sequence[int] | None = None,
    prior: str | Prior | Any = "normal",
    labels: Tensor | None = None,
    corrector: Callable[..., Tensor] | Sequence[Callable[..., Tensor]] | None = None,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    seed: int = 0,
) -> DensityRatio:
    """The density ratio shifted so that ``E_pg[exp d] = 1`` on ``n`` generated samples
    (:func:`dgflow.self_normalized`); for critics defined up to a constant, before JS or logD."""
    ratio = DensityRatio(discriminator, corrector)
    device = resolve_device(device, generator, ratio)
    _, x = generate(generator, n, latent_shape=latent_shape, prior=prior, labels=labels, batch_size=batch_size,
                    device=device, seed=seed)
    logits = []
    with eval_mode(ratio), torch.no_grad():
        for index in torch.arange(n).split(batch_size):
            lab = None if labels is None else labels[index].to(device)
            logits.append(ratio(x[index].to(device), lab).cpu())
    return self_normalized(ratio, torch.cat(logits))


def select(
    generator: Callable[..., Tensor],
    discriminator: Callable[..., Tensor] | Sequence[Callable[..., Tensor]],
    n: int,
    method: str = "drs",
    *,
    latent_shape: Sequence[int] | None = None,
    prior: str | Prior | Any = "normal",
    labels: Tensor | None = None,
    real: Tensor | None = None,
    real_labels: Tensor | None = None,
    corrector: Callable[..., Tensor] | Sequence[Callable[..., Tensor]] | None = None,
    batch_size: int = 500,
    device: torch.device | str | None = None,
    seed: int = 0,
    progress: bool = True,
    shard: bool = False,
    **options: Any,
) -> SelectResult:
    """Draw ``n`` samples by ``method`` (``"drs"`` or ``"mhgan"``) from the generator's proposals.

    ``real`` (held-out real data) starts MH-GAN's chains and calibrates its discriminator.
    With ``labels`` (one class per output sample) every output keeps its class; MH-GAN then
    also needs ``real_labels``. ``shard=True`` under ``torch.distributed`` (``torchrun``):
    every rank calls ``select`` and evaluates its share of the chains' proposals (MH-GAN, DRS
    with ``gamma_per_chain``); every rank returns the whole result.
    """
    if isinstance(method, str) and method.lower() in REFINERS:
        raise ValueError(f"{method!r} moves samples rather than selecting them: call dgflow.refine(..., method={method!r})")
    selector = build(SELECTORS, "selection", method, options)
    check_int("n", n, 1)
    check_int("batch_size", batch_size, 1)
    ratio = DensityRatio(discriminator, corrector)
    device = resolve_device(device, generator, ratio)
    prior_obj = make_prior(prior, latent_shape)
    labels = check_labels(labels, n)
    if real is not None:
        if not isinstance(real, Tensor):
            raise TypeError(f"real must be a tensor of real samples, got {type(real).__name__}")
        if labels is not None and real_labels is None:
            raise ValueError("conditional selection with real samples needs real_labels (the class of each real sample)")
        real_labels = check_labels(real_labels, len(real), name="real_labels")
    target = Target(generator, ratio, prior_obj)
    with eval_mode(generator, ratio):
        if labels is None:
            return selector.select(Proposals(target, seed, batch_size, device, real, shard=shard), n, progress)
        parts: list[tuple[Tensor, SelectResult]] = []
        for c in torch.unique(labels):
            where = torch.nonzero(labels == c).flatten()
            class_real = None if real is None else real[real_labels == c]
            proposals = Proposals(target.bind(c.to(device)), seed, batch_size, device, class_real,
                                  stream_prefix=f"class{int(c)}-", shard=shard)
            parts.append((where, selector.select(proposals, len(where), progress)))
    return _merge_by_class(parts, n, labels, selector)


# ----------------------------------------------------------------------------------------- helpers


def _latents(z: Tensor | None, n: int | None, latent_shape: Sequence[int] | None, prior: Any, seed: int,
             sample_ids: Tensor | Sequence[int] | None,
             dtype: torch.dtype = torch.float32) -> tuple[Tensor, Prior, Tensor]:
    if z is None:
        if n is None:
            raise ValueError("pass the starting latents z, or n (how many to draw) with latent_shape or a prior object")
        check_int("n", n, 1)
        prior_obj = make_prior(prior, latent_shape)
    else:
        if not isinstance(z, Tensor):
            raise TypeError(f"z must be a torch.Tensor shaped [N, *latent_shape], got {type(z).__name__}")
        if z.ndim < 2:
            raise ValueError(f"z must be shaped [N, *latent_shape] (at least 2-D), got shape {tuple(z.shape)}; "
                             "for a single latent use z[None]")
        if n is not None and n != len(z):
            raise ValueError(f"n={n} disagrees with the {len(z)} latents given in z")
        if latent_shape is not None and tuple(latent_shape) != tuple(z.shape[1:]):
            raise ValueError(f"latent_shape {tuple(latent_shape)} disagrees with z of shape {tuple(z.shape)}")
        if not torch.isfinite(z).all():
            raise ValueError("z contains NaN or inf")
        prior_obj = make_prior(prior, z.shape[1:])
        n = len(z)
    ids = torch.arange(n) if sample_ids is None else check_sample_ids(sample_ids, n)
    if z is None:  # in the generator's precision (float32 for float32 models: the same draws as before)
        z = prior_obj.draw(SampleNoise(seed, ids), dtype=dtype)
    return z.detach(), prior_obj, ids


def _merge_by_class(parts: list[tuple[Tensor, SelectResult]], n: int, labels: Tensor, selector: Any) -> SelectResult:
    first = parts[0][1]
    x = torch.empty((n, *first.x.shape[1:]), dtype=first.x.dtype)
    z = torch.empty((n, *first.z.shape[1:]), dtype=first.z.dtype)
    d = torch.empty(n, dtype=first.logits.dtype)
    for where, res in parts:
        x[where], z[where], d[where] = res.x, res.z, res.logits
    proposals = sum(res.n_proposals for _, res in parts)
    accepted = sum(res.acceptance_rate * res.n_proposals for _, res in parts)
    return SelectResult(x=x, z=z, logits=d, acceptance_rate=accepted / max(proposals, 1), n_proposals=proposals,
                        method=first.method, options=first.options,
                        info={"per_class": {int(labels[w[0]]): r.info for w, r in parts}}, labels=labels)
