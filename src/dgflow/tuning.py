"""Automatic step size and number of steps (``eta="auto"``, ``steps="auto"``): one pilot run, before any batch.

The controller of DGflow, DDLS and DOT, one layer above the refine loop whose steps it runs
(:func:`dgflow.refiners.base.iterate`, as the refine loop). It runs the method on a fixed pilot set (``pilot`` latents drawn
from their own per-sample streams), so the choice does not depend on the batch size, and every
batch then uses the same step size and number of steps; it returns a new method
(``dataclasses.replace``), never changes the one it is given.

**Stop by distance** (``steps="auto"`` with ``heldout=`` real samples; ``stop="distance"``, the default)::

    D_n   = unbiased MMD^2 (:class:`dgflow.mmd.MMDReference`) between phi(pilot samples after n steps) and
            phi(held-out samples), every ``check_every`` steps; kernel: the sum of Gaussian kernels with
            bandwidths s, s/2, s/4, s/8, s the median pairwise distance of phi(held-out), fixed for the pilot
    n*(h) = argmin_n D_n   if D_0 - min_n D_n > se(D_0 - min_n D_n),   else 0
            (argmin: the vertex of a parabola fitted to the 7 evaluations around the smallest, less noisy
            on a flat minimum)

``se`` is the paired jackknife error (:func:`dgflow.mmd.difference_se`: the same pilot samples and held-out
samples at every step, so most of each estimate's own error cancels). The margin makes a discriminator
whose flow moves the samples away from the data (D rising from step 0) give ``steps = 0``. phi:
``features=`` (e.g. :class:`dgflow.metrics.InceptionFeatures`), else the samples flattened; never the
discriminator's own features, which the flow optimises against. A pilot run stops once D has been more than
2 paired errors above its minimum at 2 consecutive evaluations, once it has run twice the steps of its minimum and
at least ``min_steps``, or after ``max_steps``.

**Stop by level** (``stop="logit-level"``, and the step size when ``steps`` is given)::

    level   d* = mean of d over held-out real samples                       (heldout=...)
            d* = sum_i e^{d_i} d_i / sum_i e^{d_i} over the pilot's base samples   (otherwise:
                 E_mu[d] = E_pg[e^d d] by importance weighting, because mu / p_g = e^d)
    stop    n*(h) = the first step at which the pilot's mean logit reaches d* (never after ``max_steps``)

``steps="auto"`` without held-out samples is refused unless ``stop="logit-level"`` is asked for: on the
benchmark models (benchmarks/results/auto_step.md) that level stopped where the samples were still far
from the data.

**Size**: a geometric grid (factor sqrt 10, around the method's default step size; h is the field the method
names, ``step_size_name``), largest first, each candidate judged by a trust region:

    DGflow, DOT  rho >= 1/2, where rho = (mean logit gained) / (gain predicted to first order,
                 sum_i <grad d(z_i), z_i' - z_i> / M) over the first steps, and n*(h) >= min_steps
                 (level stop: no step covers more than 1/min_steps of the way to d*)
    DDLS         the mean Metropolis acceptance probability of its Langevin proposals along the
                 pilot's first 10 steps is >= 0.574, the optimal MALA rate (Roberts & Rosenthal 1998)

The largest candidate that passes is taken. With the distance stop the trust region of DGflow and DOT is
rho >= 1/2 and n*(h) = 0 or n*(h) >= min_steps (the minimum is not reached in a few coarse steps); DDLS takes
its MALA size and runs it on to its distance stop.

With ``steps`` given and only the step size automatic, ``min_steps`` is that number of steps:
the largest h that does not pass d* before the last step. With the step size given and
``steps="auto"``, only the stop is chosen. The evidence (pilot curves, level, distances with their
errors, reason, cost) goes to ``RefineResult.info["auto"]`` and to the ``dgflow.auto`` logger;
:func:`dgflow.plots.plot_pilot` draws it.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import Tensor

from .mmd import MMDEstimate, MMDReference, difference_se, median_distance
from .refiners.base import DrawInitial, Refiner, is_auto, iterate
from .rng import SampleNoise
from .target import Target

MALA_ACCEPTANCE = 0.574  # optimal acceptance rate of MALA (Roberts & Rosenthal 1998)
TRUST_RATIO = 0.5  # accept a step size when the logit gains at least half its first-order prediction
RATIO_STEPS = 5  # ... over the first steps of the pilot
ACCEPTANCE_STEPS = 10  # MALA acceptance: averaged over the first steps of the pilot
FIT = 3  # the stop: the vertex of a parabola fitted to the distances within this many evaluations of the smallest
MARGIN = 1.0  # refine only when the smallest distance is more than this many paired errors below the one at step 0
PAST_MINIMUM = 2.0  # a distance pilot stops once D is this many paired errors above its minimum ...
PATIENCE = 2  # ... at this many consecutive evaluations,
PLATEAU = 2.0  # or once it has run this many times the steps of its minimum (and at least min_steps)
SCALES = tuple(2.0**-j for j in range(4))  # the kernel: Gaussians of bandwidths median distance x 1, 1/2, 1/4, 1/8
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
    distance_steps: list[int] = field(default_factory=list)  # steps at which the distance was evaluated
    distance: list[float] = field(default_factory=list)  # unbiased MMD^2 to the held-out samples
    distance_se: list[float] = field(default_factory=list)  # its jackknife standard error
    difference_se: list[float] = field(default_factory=list)  # paired standard error of (distance - its minimum)
    stop: int | None = None  # the distance stop n* (None: no distance tracked)

    def record(self) -> dict[str, Any]:
        """The trajectory as a plain dict (kept in ``auto.json``)."""
        return dataclasses.asdict(self)

    @property
    def steps_run(self) -> int:
        return len(self.mean_logit) - 1


class HeldoutDistance:
    """``x -> `` unbiased MMD^2 between ``phi(x)`` and ``phi(heldout)``. The kernel is a sum of Gaussian kernels whose
    bandwidths are fixed once, the median pairwise distance ``s`` of ``phi(heldout)`` times 1, 1/2, .., 1/32 (coarse
    and fine structure: on the affine-Gaussian cases its minimum is the KL-optimal step), so that every step of every
    pilot run is measured with the same kernel. ``phi``: ``features``, else the samples flattened."""

    def __init__(self, heldout: Tensor, features: Callable[[Tensor], Tensor] | None, device: torch.device,
                 batch_size: int = 500):
        self.features, self.batch_size = features, batch_size
        real = self.embed(heldout.to(device))
        median = median_distance(real, real[:0]) or 1.0
        self.bandwidth = tuple(median * f for f in SCALES)
        self.reference = MMDReference(real, "rbf", self.bandwidth)
        self.described = (f"the given features ({type(features).__name__}, {real.shape[1]} values)" if features
                          else f"the samples flattened ({real.shape[1]} values)")

    def embed(self, x: Tensor) -> Tensor:
        """``phi(x)`` as float64 ``[B, k]``, checked."""
        if self.features is None:
            return x.detach().reshape(len(x), -1).double()
        out = []
        with torch.no_grad():
            for chunk in x.split(self.batch_size):
                f = self.features(chunk)
                if not isinstance(f, Tensor) or f.ndim < 1 or len(f) != len(chunk):
                    shape = tuple(f.shape) if isinstance(f, Tensor) else type(f).__name__
                    raise ValueError(f"features must map a batch of samples [B, ...] to one feature vector per sample "
                                     f"[B, k]; for a batch of {len(chunk)} samples shaped {tuple(chunk.shape[1:])} it "
                                     f"returned {shape}")
                out.append(f.detach().reshape(len(chunk), -1).double())
        phi = torch.cat(out)
        if not torch.isfinite(phi).all():
            raise ValueError("features returned NaN or inf")
        return phi

    def __call__(self, x: Tensor) -> MMDEstimate:
        return self.reference.estimate(self.embed(x))


class DistanceTrack:
    """The distance of one pilot run, evaluated every ``every`` steps, and when the run can stop (module docstring)."""

    def __init__(self, distance: HeldoutDistance, every: int, min_run: int):
        self.distance, self.every, self.min_run = distance, every, min_run
        self.steps: list[int] = []
        self.estimates: list[MMDEstimate] = []
        self.above = 0  # consecutive evaluations more than PAST_MINIMUM paired errors above the minimum

    def due(self, n: int, last: int) -> bool:
        """Whether the distance is evaluated after step ``n`` (every ``every`` steps, and the last)."""
        return n % self.every == 0 or n == last

    def add(self, n: int, x: Tensor) -> bool:
        """Record the distance after step ``n``; whether the run is past its minimum (or on a plateau)."""
        est = self.distance(x)
        self.steps.append(n)
        self.estimates.append(est)
        best = self.best
        self.above = self.above + 1 if est.mmd2 - best.mmd2 > PAST_MINIMUM * difference_se(est, best) else 0
        return self.above >= PATIENCE or (n >= self.min_run and n >= PLATEAU * self.steps[self.lowest])

    @property
    def lowest(self) -> int:
        return min(range(len(self.estimates)), key=lambda i: self.estimates[i].mmd2)

    @property
    def best(self) -> MMDEstimate:
        return self.estimates[self.lowest]

    def stop(self) -> tuple[int, list[float]]:
        """The evaluated step of the smallest distance, or 0 when it is not below the distance at step 0 by more
        than MARGIN paired standard errors; and the paired errors of every evaluation's difference to the minimum."""
        best = self.best
        errors = [difference_se(e, best) for e in self.estimates]
        significant = self.estimates[0].mmd2 - best.mmd2 > MARGIN * errors[0]
        return (self.vertex() if significant else 0), errors

    def vertex(self) -> int:
        """The minimum of the parabola fitted (least squares) to the distances within ``FIT`` evaluations of the
        smallest one, rounded to a step and kept inside those evaluations (the smallest when they are not convex):
        less noisy than the smallest evaluation itself on a flat minimum."""
        i = self.lowest
        window = range(max(0, i - FIT), min(len(self.steps), i + FIT + 1))
        if len(window) < 3:
            return self.steps[i]
        n = torch.tensor([float(self.steps[j]) for j in window], dtype=torch.float64)
        d = torch.tensor([self.estimates[j].mmd2 for j in window], dtype=torch.float64)
        a, b, _ = torch.linalg.lstsq(torch.stack([n**2, n, torch.ones_like(n)], 1), d[:, None]).solution[:, 0].tolist()
        if a <= 0:
            return self.steps[i]
        return int(min(max(round(-b / (2 * a)), self.steps[window[0]]), self.steps[window[-1]]))

    def fill(self, t: Trajectory) -> None:
        """Copy the distances, their errors and the stop into the trajectory's record."""
        t.stop, t.difference_se = self.stop()
        t.distance_steps = list(self.steps)
        t.distance = [e.mmd2 for e in self.estimates]
        t.distance_se = [e.se for e in self.estimates]


def run_pilot(method: Refiner, target: Target, z0: Tensor, noise: SampleNoise, level: float, steps: int,
              min_ratio: float | None = None, track: DistanceTrack | None = None) -> Trajectory:
    """Run ``method`` (its step size set) on the pilot latents ``z0`` for ``steps`` steps: without ``track``
    until the level, with it until past the distance minimum (see :class:`DistanceTrack`); with ``min_ratio``,
    until the trust ratio of the first steps is known to be below it."""
    state = method.init(target, z0)
    means = [float(state.logit.double().mean())]
    reached = 0 if means[0] >= level else None
    gained = predicted = 0.0
    accept: list[float] = []
    pending: list[tuple[int, Tensor]] = []  # states whose distance waits for the trust ratio (none for rejected sizes)

    def measure(n: int, x: Tensor | None = None) -> bool:  # whether the distance is past its minimum
        if track is None:
            return False
        if x is not None:
            pending.append((n, x))
            if min_ratio is not None and n < RATIO_STEPS:
                return False
        past = [track.add(m, xm) for m, xm in pending]
        pending.clear()
        return any(past)

    past_minimum = measure(0, state.x)
    if (reached is None or track is not None) and steps > 0 and not past_minimum:
        for n, new, info in iterate(method, target, state, noise):
            means.append(float(new.logit.double().mean()))
            if n < RATIO_STEPS:
                grad = method.logit_grad(target, state)
                if grad is not None:
                    predicted += float((grad * (new.z - state.z)).flatten(1).sum(1).double().mean())
                    gained += means[-1] - means[-2]
            if info.log_acceptance is not None:
                accept.append(float(info.log_acceptance.double().clamp(max=0).exp().mean()))
            if means[-1] >= level and reached is None:
                reached = n + 1
            state = new
            trust_failed = (min_ratio is not None and n + 1 == RATIO_STEPS
                            and not (predicted > 0 and gained >= min_ratio * predicted))
            if trust_failed:
                pending.clear()
            elif track is not None and track.due(n + 1, steps):
                past_minimum = measure(n + 1, state.x)
            if (reached is not None and track is None) or n + 1 == steps or trust_failed or past_minimum:
                break  # (trust failed: no need to run on)
    ratio = gained / predicted if predicted > 0 else None
    t = Trajectory(size=0.0, mean_logit=means, reached=reached, ratio=ratio,
                   acceptance=sum(accept) / len(accept) if accept else None)
    if track is not None:
        measure(steps)  # the states still waiting (a run shorter than the trust ratio's steps)
        if track.estimates:
            track.fill(t)
    return t


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
    auto_size, auto_steps = is_auto(refiner.step_size), is_auto(refiner.steps)
    by_distance = auto_steps and refiner.stop == "distance"
    if by_distance and refiner.heldout is None:
        raise ValueError(NEEDS_HELDOUT)
    z0, target = draw("auto-pilot", refiner.pilot)
    noise = SampleNoise(PILOT_SEED, torch.arange(refiner.pilot), z0.device)
    with torch.no_grad():
        x0 = target.sample(z0)
        base = target.discriminate(x0)
    level, source = stopping_level(target, base, refiner.heldout)
    if by_distance:
        return _tune_by_distance(refiner, target, z0, noise, base, level, source)
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
    cost = sum(t.steps_run for t in trials) * refiner.pilot
    if judge_steps < horizon and auto_steps:  # run the chosen step size on to the level
        full = _pilot(refiner, chosen.size, horizon, target, z0, noise, level)
        chosen.mean_logit, chosen.reached = full.mean_logit, full.reached
        cost += full.steps_run * refiner.pilot
    steps = (chosen.reached if chosen.reached is not None else horizon) if auto_steps else refiner.steps
    size = chosen.size if auto_size else refiner.step_size
    reason = _reason(option, chosen, steps, level, source, auto_size, auto_steps, horizon, need, criterion)
    log.info("%s: %s", refiner.name, reason)
    return dataclasses.replace(refiner, **{option: size}, steps=steps), {"auto": {
        "chosen": {option: chosen.size, "steps": steps}, "reason": reason, "level": level,
        "level_source": source, "base_mean_logit": float(base.double().mean()), "criterion": criterion,
        "pilot": refiner.pilot, "horizon": horizon, "min_steps": need, "step_option": option,
        "stop_rule": "logit-level", "pilot_sample_steps": cost, "trials": [t.record() for t in trials]}}


def _tune_by_distance(refiner: Refiner, target: Target, z0: Tensor, noise: SampleNoise, base: Tensor, level: float,
                      source: str) -> tuple[Refiner, dict[str, Any]]:
    """``steps="auto"`` (and the step size) by the distance to the held-out samples (module docstring)."""
    option, criterion = refiner.step_size_name, refiner.auto_criterion
    auto_size, horizon = is_auto(refiner.step_size), refiner.max_steps
    distance = HeldoutDistance(refiner.heldout, refiner.features, z0.device)
    sizes = grid(refiner.default_step_size(), *refiner.auto_grid) if auto_size else [refiner.step_size]
    trials: list[Trajectory] = []

    def run(h: float, min_ratio: float | None = None) -> Trajectory:  # to the distance stop (DistanceTrack)
        track = DistanceTrack(distance, refiner.check_every, min(refiner.min_steps, horizon))
        return _pilot(refiner, h, horizon, target, z0, noise, level, min_ratio, track)

    best: Trajectory | None = None
    if criterion == "mala" and auto_size:  # the MALA size from short runs, then that size run on to its stop
        for h in sizes:
            t = _pilot(refiner, h, min(horizon, ACCEPTANCE_STEPS), target, z0, noise, level)
            trials.append(t)
            t.accepted, t.why = _judge(t, refiner.min_steps, criterion, auto_size)
            if t.accepted:
                break
        else:
            trials[-1].why += "; no candidate passed, taking the smallest"
        best = run(trials[-1].size)
        best.accepted, best.why = True, f"run on by distance: {trials[-1].why}"
        trials.append(best)
    else:
        trust = TRUST_RATIO if auto_size and criterion == "trust-region" else None
        for h in sizes:
            t = run(h, trust)
            trials.append(t)
            t.accepted, t.why = _judge_by_distance(t, refiner.min_steps, trust)
            if t.accepted:
                best = t
                break
        if best is None:  # even the smallest step size failed: take the most cautious one, run to its stop
            best = run(sizes[-1])
            best.accepted, best.why = True, f"no candidate passed, taking the smallest: {trials[-1].why}"
            trials.append(best)
    steps = best.stop if best.stop is not None else 0
    low = min(range(len(best.distance)), key=best.distance.__getitem__)
    rule = (f"the step of the smallest unbiased MMD^2 to {len(refiner.heldout)} held-out samples, in "
            f"{distance.described}, when more than {MARGIN:g} paired standard error below the distance at step 0")
    if steps == 0:
        why_steps = (f"steps=0 (the distance to the held-out samples never fell significantly below its value at step 0: "
                     f"{best.distance[0]:.4g}, minimum {best.distance[low]:.4g} at step {best.distance_steps[low]}, "
                     f"paired error {best.difference_se[0]:.2g}: the base samples are kept; {rule})")
    else:
        why_steps = (f"steps={steps} ({rule}: {best.distance[low]:.4g} at step {best.distance_steps[low]} against "
                     f"{best.distance[0]:.4g} at step 0, paired error {best.difference_se[0]:.2g}; the vertex of a "
                     f"parabola fitted around it)")
    size_rule = ("largest of the grid with MALA acceptance >= 0.574, then run on" if criterion == "mala" else
                 f"the largest of the grid with rho >= {TRUST_RATIO} whose stop is 0 or >= {refiner.min_steps} steps")
    reason = (f"{option}={best.size:g} ({size_rule}: {best.why}); " if auto_size else "") + why_steps
    log.info("%s: %s", refiner.name, reason)
    size = best.size if auto_size else refiner.step_size
    return dataclasses.replace(refiner, **{option: size}, steps=steps), {"auto": {
        "chosen": {option: best.size, "steps": steps}, "reason": reason, "level": level, "level_source": source,
        "base_mean_logit": float(base.double().mean()), "criterion": criterion, "stop_rule": "distance",
        "features": distance.described, "bandwidth": distance.bandwidth, "heldout": len(refiner.heldout),
        "check_every": refiner.check_every, "pilot": refiner.pilot, "horizon": horizon,
        "min_steps": refiner.min_steps, "step_option": option,
        "pilot_sample_steps": sum(t.steps_run for t in trials) * refiner.pilot,
        "trials": [t.record() for t in trials]}}


def _judge_by_distance(t: Trajectory, need: int, trust: float | None) -> tuple[bool, str]:
    if trust is None:
        return True, "given"
    if t.ratio is None or t.ratio < trust:
        shown = "none" if t.ratio is None else f"{t.ratio:.2f}"
        return False, f"rho {shown} < {trust} (the logit gained less than half its linear prediction)"
    if t.stop is not None and 0 < t.stop < need:
        return False, f"rho {t.ratio:.2f}; the distance is smallest at step {t.stop} < {need} (steps too large)"
    return True, f"rho {t.ratio:.2f}; the distance is smallest at step {t.stop}"


NEEDS_HELDOUT = (
    'steps="auto" chooses the step at which the samples are closest to real data, and needs held-out real samples: '
    "pass heldout=<a few hundred to 1,000 real samples shaped like the generator's output> (config: heldout_real: "
    '1000). Without real data, give steps (e.g. the published steps=25; eta="auto" still chooses the step size), or '
    'ask for the discriminator-only rule with stop="logit-level" (worse than the published defaults on all six '
    "benchmark models of the README's automatic step size section)")


def _pilot(refiner: Refiner, size: float, steps: int, target: Target, z0: Tensor, noise: SampleNoise,
           level: float, min_ratio: float | None = None, track: DistanceTrack | None = None) -> Trajectory:
    # one step more than run, so that every state run to carries its gradient (acceptance statistics)
    method = dataclasses.replace(refiner, **{refiner.step_size_name: size}, steps=steps + 1, heldout=None,
                                 features=None)
    t = run_pilot(method, target, z0, noise, level, steps, min_ratio, track)
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
