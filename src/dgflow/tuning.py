"""Automatic step size and number of steps (``eta="auto"``, ``steps="auto"``): one pilot run, before any batch.

The controller of DGflow, DDLS and DOT, one layer above the refine loop whose steps it runs
(:func:`dgflow.refiners.base.iterate`, as the refine loop). It runs the method on a fixed pilot set (``pilot`` latents drawn
from their own per-sample streams), so the choice does not depend on the batch size, and every
batch then uses the same step size and number of steps; it returns a new method
(``dataclasses.replace``), never changes the one it is given::

    level   d* = mean of d over held-out real samples                       (heldout=...)
            d* = sum_i e^{d_i} d_i / sum_i e^{d_i} over the pilot's base samples   (otherwise:
                 E_mu[d] = E_pg[e^d d] by importance weighting, because mu / p_g = e^d)
    stop    n*(h) = the first step at which the pilot's mean logit reaches d*: the refined
            samples then look, on average, as real to the discriminator as real data
            (never stopping after ``max_steps``)
    size    the largest h of a geometric grid (factor sqrt 10, around the method's default step size;
            h is the field the method names, ``step_size_name``) that passes a trust region:
              DGflow, DOT  n*(h) >= min_steps (no step covers more than 1/min_steps of the way
                           from the base level to d*) and rho >= 1/2, where
                           rho = (mean logit gained) / (gain predicted to first order,
                           sum_i <grad d(z_i), z_i' - z_i> / M) over the first steps
              DDLS         the mean Metropolis acceptance probability of its Langevin proposals
                           (its steps' info) along the pilot's first 10 steps is >= 0.574, the optimal
                           MALA rate (Roberts & Rosenthal 1998)

With ``steps`` given and only the step size automatic, ``min_steps`` is that number of steps:
the largest h that does not pass d* before the last step. With the step size given and
``steps="auto"``, only the stop is chosen. Samples already at the level give ``steps = 0``
(the base model unchanged). The evidence (pilot curves, level, reason) goes to
``RefineResult.info["auto"]`` and to the ``dgflow.auto`` logger; :func:`dgflow.plots.plot_pilot` draws it.
"""

from __future__ import annotations

import dataclasses
import logging
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .refiners.base import DrawInitial, Refiner, is_auto, iterate
from .rng import SampleNoise
from .target import Target

MALA_ACCEPTANCE = 0.574  # optimal acceptance rate of MALA (Roberts & Rosenthal 1998)
TRUST_RATIO = 0.5  # accept a step size when the logit gains at least half its first-order prediction
RATIO_STEPS = 5  # ... over the first steps of the pilot
ACCEPTANCE_STEPS = 10  # MALA acceptance: averaged over the first steps of the pilot
PILOT_SEED = 0x9D2C5680  # the pilot's noise streams (its latents come from the run's seed)
log = logging.getLogger("dgflow.auto")


def grid(default: float, low: int = -3, high: int = 1) -> list[float]:
    """``default * 10^(k/2)`` for ``k = high .. low``: candidate step sizes, largest first."""
    return [float(f"{default * 10 ** (k / 2):.3g}") for k in range(2 * high, 2 * low - 1, -1)]


# ------------------------------------------------------------------------------------ the pilot


@dataclass
class Trajectory:
    """One pilot run: the mean logit after each step and the trust-region statistics."""

    size: float
    mean_logit: list[float]
    reached: int | None  # first step at which the mean logit reached the level
    ratio: float | None  # rho: logit gained / first-order prediction (first RATIO_STEPS steps)
    acceptance: float | None  # mean MALA acceptance probability (DDLS)
    accepted: bool = False
    why: str = ""

    def record(self) -> dict[str, Any]:
        """The trajectory as a plain dict (kept in ``auto.json``)."""
        return dataclasses.asdict(self)


def run_pilot(method: Refiner, target: Target, z0: Tensor, noise: SampleNoise, level: float, steps: int,
              min_ratio: float | None = None) -> Trajectory:
    """Run ``method`` (its step size set) on the pilot latents ``z0`` for ``steps`` steps, or until the level
    (or, with ``min_ratio``, until the trust ratio of the first steps is known to be below it)."""
    state = method.init(target, z0)
    means = [float(state.logit.double().mean())]
    reached = 0 if means[0] >= level else None
    gained = predicted = 0.0
    accept: list[float] = []
    if reached is None and steps > 0:
        for n, new, info in iterate(method, target, state, noise):
            means.append(float(new.logit.double().mean()))
            if n < RATIO_STEPS:
                grad = method.logit_grad(target, state)
                if grad is not None:
                    predicted += float((grad * (new.z - state.z)).flatten(1).sum(1).double().mean())
                    gained += means[-1] - means[-2]
            if info.log_acceptance is not None:
                accept.append(float(info.log_acceptance.double().clamp(max=0).exp().mean()))
            if means[-1] >= level:
                reached = n + 1
            state = new
            trust_failed = (min_ratio is not None and n + 1 == RATIO_STEPS
                            and not (predicted > 0 and gained >= min_ratio * predicted))
            if reached is not None or n + 1 == steps or trust_failed:  # (trust failed: no need to run on)
                break
    ratio = gained / predicted if predicted > 0 else None
    return Trajectory(size=0.0, mean_logit=means, reached=reached, ratio=ratio,
                      acceptance=sum(accept) / len(accept) if accept else None)


def stopping_level(target: Target, base_logits: Tensor, heldout: Tensor | None,
                   batch_size: int = 500) -> tuple[float, str]:
    """The level d* the mean logit should reach, and where it came from."""
    if heldout is not None:
        if target.labels is not None:
            raise ValueError("heldout real samples with a conditional model are not supported yet (they would need "
                             "their labels); leave heldout=None to use the importance-weighted level")
        device = base_logits.device
        with torch.no_grad():
            d = torch.cat([target.discriminate(c.to(device)) for c in heldout.split(batch_size)]).double()
        return float(d.mean()), f"mean logit of {len(heldout)} held-out real samples (sd {float(d.std()):.3g})"
    d = base_logits.double()
    w = torch.softmax(d, 0)
    ess = float(1 / (w**2).sum())
    note = "" if ess >= 20 else "; few samples carry the weight, pass heldout=... for a reliable level"
    return float((w * d).sum()), (f"importance-weighted E_mu[d] = E_pg[e^d d] from {len(d)} pilot logits "
                                  f"(effective sample size {ess:.0f}{note})")


# ------------------------------------------------------------------------------------ the choice


def tune(refiner: Refiner, draw: DrawInitial) -> tuple[Refiner, dict[str, Any]]:
    """``refiner`` with its step size and/or ``steps`` chosen where they are ``"auto"``, and the evidence.

    The step size is the field ``refiner.step_size_name``; the candidates are :func:`grid` around its
    default over ``refiner.auto_grid``; ``refiner.auto_criterion``: "trust-region" (DGflow, DOT) or
    "mala" (DDLS); see the module docstring.
    """
    option, criterion = refiner.step_size_name, refiner.auto_criterion
    z0, target = draw("auto-pilot", refiner.pilot)
    noise = SampleNoise(PILOT_SEED, torch.arange(refiner.pilot), z0.device)
    with torch.no_grad():
        base = target.discriminate(target.sample(z0))
    level, source = stopping_level(target, base, refiner.heldout)
    auto_size, auto_steps = is_auto(refiner.step_size), is_auto(refiner.steps)
    horizon = refiner.max_steps if auto_steps else refiner.steps
    need = refiner.min_steps if auto_steps else refiner.steps
    sizes = grid(refiner.default_step_size(), *refiner.auto_grid) if auto_size else [refiner.step_size]
    trials: list[Trajectory] = []
    chosen: Trajectory | None = None
    # MALA's acceptance is judged on a short run; the trust region on the run to the level
    judge_steps = min(horizon, ACCEPTANCE_STEPS) if criterion == "mala" and auto_size else horizon
    for h in sizes:
        early_reject = TRUST_RATIO if criterion == "trust-region" and auto_size else None
        t = _pilot(refiner, h, judge_steps, target, z0, noise, level, early_reject)
        trials.append(t)
        t.accepted, t.why = _judge(t, need, criterion, auto_size)
        if t.accepted:
            chosen = t
            break
    if chosen is None:  # even the smallest step size failed: take the most cautious one
        chosen = trials[-1]
        chosen.why += "; no candidate passed, taking the smallest"
    if judge_steps < horizon and auto_steps:  # run the chosen step size on to the level
        full = _pilot(refiner, chosen.size, horizon, target, z0, noise, level)
        chosen.mean_logit, chosen.reached = full.mean_logit, full.reached
    steps = (chosen.reached if chosen.reached is not None else horizon) if auto_steps else refiner.steps
    size = chosen.size if auto_size else refiner.step_size
    reason = _reason(option, chosen, steps, level, source, auto_size, auto_steps, horizon, need, criterion)
    log.info("%s: %s", refiner.name, reason)
    return dataclasses.replace(refiner, **{option: size}, steps=steps), {"auto": {
        "chosen": {option: chosen.size, "steps": steps}, "reason": reason, "level": level,
        "level_source": source, "base_mean_logit": float(base.double().mean()), "criterion": criterion,
        "pilot": refiner.pilot, "horizon": horizon, "min_steps": need, "step_option": option,
        "trials": [t.record() for t in trials]}}


def _pilot(refiner: Refiner, size: float, steps: int, target: Target, z0: Tensor, noise: SampleNoise,
           level: float, min_ratio: float | None = None) -> Trajectory:
    # one step more than run, so that every state run to carries its gradient (acceptance statistics)
    method = dataclasses.replace(refiner, **{refiner.step_size_name: size}, steps=steps + 1, heldout=None)
    t = run_pilot(method, target, z0, noise, level, steps, min_ratio)
    t.size = size
    return t


def _judge(t: Trajectory, need: int, criterion: str, auto_size: bool) -> tuple[bool, str]:
    if not auto_size:
        return True, "given"
    if criterion == "mala":
        if t.acceptance is None:
            return False, "no acceptance statistics"
        ok = t.acceptance >= MALA_ACCEPTANCE
        return ok, f"acceptance {t.acceptance:.3f} {'>=' if ok else '<'} {MALA_ACCEPTANCE}"
    if t.reached is not None and t.reached < need:
        if t.reached == 0:
            return True, "base samples already at the level"
        return False, f"reached the level in {t.reached} < {need} steps (steps too large)"
    if t.ratio is None or t.ratio < TRUST_RATIO:
        shown = "none" if t.ratio is None else f"{t.ratio:.2f}"
        return False, f"rho {shown} < {TRUST_RATIO} (the logit gained less than half its linear prediction)"
    where = f"reached the level at step {t.reached}" if t.reached is not None else "did not reach the level"
    return True, f"{where}; rho {t.ratio:.2f}"


def _reason(opt: str, t: Trajectory, steps: int, level: float, source: str, auto_size: bool, auto_steps: bool,
            horizon: int, need: int, criterion: str) -> str:
    parts = []
    if auto_size:
        rule = (f"largest of the grid with MALA acceptance >= {MALA_ACCEPTANCE}" if criterion == "mala" else
                f"largest of the grid taking >= {need} steps to the level with rho >= {TRUST_RATIO}")
        parts.append(f"{opt}={t.size:g} ({rule}: {t.why})")
    if auto_steps:
        if t.reached is None:
            parts.append(f"steps={steps} (the pilot's mean logit did not reach the level {level:.3f} within "
                         f"{horizon} steps; capped at max_steps)")
        else:
            parts.append(f"steps={steps} (the pilot's mean logit reached the level {level:.3f} at that step)")
    return "; ".join(parts) + f"; level: {source}"


# ------------------------------------------------------------------------------------ reporting
