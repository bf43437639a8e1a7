"""What a refiner sees: a position ``z`` mapped to a sample ``x`` and its logit ``d``.

In latent space the map is the generator, ``x = g(z)``; in data space it is the
identity and the position is the sample itself. Refiners only call
:meth:`Target.evaluate`, so one refiner serves both spaces.
"""

from __future__ import annotations

import contextlib
from dataclasses import replace
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .byo import modules_of
from .priors import Prior
from .ratio import DensityRatio, check_samples, nonfinite_logits_error, nonfinite_samples_error
from .speed import SpeedOptions, batch_for_budget, prepare_model, to_layout


class Evaluation(NamedTuple):
    """The target at one position: ``x = g(z)``, ``logit = d(x)``, ``grad = grad_z d(g(z))``."""

    z: Tensor
    x: Tensor
    logit: Tensor
    grad: Tensor | None


class Target:
    """``z -> (g(z), d(g(z)), grad_z d(g(z)))`` for one batch (with its labels).

    ``speed`` (:class:`dgflow.speed.SpeedOptions`): evaluate in micro-batches of at most
    ``speed.max_batch_size`` rows, with the networks under autocast and in channels-last layout.
    """

    def __init__(self, transform: Callable[..., Tensor] | None, ratio: DensityRatio,
                 prior: Prior | None, labels: Tensor | None = None, speed: SpeedOptions | None = None,
                 guard: FiniteGuard | None = None):
        self.transform = transform  # None: data space (identity)
        self.ratio = ratio
        self.prior = prior
        self.labels = labels
        self.speed = speed
        self.guard = guard  # None: evaluate() checks finiteness at once; else it defers to the guard

    @property
    def space(self) -> str:
        return "data" if self.transform is None else "latent"

    def bind(self, labels: Tensor | None) -> Target:
        """The same target for a batch with these labels."""
        return Target(self.transform, self.ratio, self.prior, labels, self.speed, self.guard)

    def labels_for(self, n: int) -> Tensor | None:
        """The labels of a batch of ``n`` (a single class label is repeated)."""
        if self.labels is None or self.labels.ndim > 0:
            return self.labels
        return self.labels.expand(n)

    def _chunks(self, n: int) -> list[tuple[slice, Target]] | None:
        """``(rows, target bound to their labels)`` per micro-batch, or None for one pass."""
        size = None if self.speed is None else self.speed.max_batch_size
        if size is None or n <= size:
            return None
        labels = self.labels_for(n)
        return [(slice(i, i + size), self.bind(None if labels is None else labels[i:i + size]))
                for i in range(0, n, size)]

    def _autocast(self, like: Tensor) -> contextlib.AbstractContextManager:
        dtype = None if self.speed is None else self.speed.dtype
        return contextlib.nullcontext() if dtype is None else torch.autocast(like.device.type, dtype=dtype)

    def _float(self, out: Tensor, like: Tensor) -> Tensor:
        """An autocast output back in the caller's precision."""
        if self.speed is not None and self.speed.dtype is not None and out.dtype == self.speed.dtype:
            return out.to(like.dtype if like.is_floating_point() else torch.float32)
        return out

    def sample(self, z: Tensor, check_finite: bool = True) -> Tensor:
        """``x = g(z)`` (``z`` itself in data space), checked for shape and finiteness."""
        if self.transform is None:
            return z
        chunks = self._chunks(len(z))
        if chunks:
            return torch.cat([t.sample(z[rows], check_finite) for rows, t in chunks])
        labels = self.labels_for(len(z))
        with self._autocast(z):
            x = self.transform(z) if labels is None else self.transform(z, labels)
        return check_samples(self._float(x, z), len(z), check_finite=check_finite)

    def discriminate(self, x: Tensor, check_finite: bool = True) -> Tensor:
        """The density-ratio logit ``d(x)`` shaped ``[B]``, in the layout and precision the speed options ask for."""
        chunks = self._chunks(len(x))
        if chunks:
            return torch.cat([t.discriminate(x[rows], check_finite) for rows, t in chunks])
        with self._autocast(x):
            d = self.ratio(to_layout(x, self.speed), self.labels_for(len(x)), check_finite=check_finite)
        return self._float(d, x)

    @torch.no_grad()
    def logit(self, z: Tensor) -> Tensor:
        """``d(g(z))`` without gradients, checked as :meth:`evaluate` checks: one finiteness test on the logits (a
        NaN in ``x`` reaches them; the error still names the generator when it made the NaN)."""
        x = self.sample(z, check_finite=False)
        d = self.discriminate(x, check_finite=False)
        self._check_finite(z, x, d, None)
        return d

    def evaluate(self, z: Tensor, grad: bool = True) -> Evaluation:
        """Forward (and backward to ``z`` when ``grad``); parameters get no ``.grad``."""
        chunks = self._chunks(len(z))
        if chunks:  # every row's result depends on that row only: evaluate in pieces
            parts = [t.evaluate(z[rows], grad) for rows, t in chunks]
            return Evaluation(*(None if p[0] is None else torch.cat(p) for p in zip(*parts)))
        if not grad:
            with torch.no_grad():
                x = self.sample(z, check_finite=False)
                d = self.discriminate(x, check_finite=False)
            self._check_finite(z, x, d, None)
            return Evaluation(z, x, d, None)
        with torch.enable_grad():
            z_ = z.detach().requires_grad_(True)
            x = self.sample(z_, check_finite=False)
            d = self.discriminate(x, check_finite=False)
            if not d.requires_grad:
                if self.guard is None:
                    self._check_finite(z, x.detach(), d, None)  # a non-finite logit is the first thing to report
                raise RuntimeError(DETACHED + " (or did the generator or discriminator run under torch.no_grad()?)")
            (g,) = torch.autograd.grad(d.sum(), z_, allow_unused=True)
            if g is None:
                raise RuntimeError(DETACHED)
        x, d = x.detach(), d.detach()
        self._check_finite(z, x, d, g)
        return Evaluation(z.detach(), x, d, g)

    def _check_finite(self, z: Tensor, x: Tensor, d: Tensor, grad: Tensor | None) -> None:
        """Raise if the logit or the gradient holds NaN or inf (a NaN in ``x`` reaches the logit).

        One reduction, ``isfinite(sum d + sum grad)``; only when it fails are the parts examined (the
        sum can also overflow), by evaluating again with the per-output checks, so the error names
        the generator or the discriminator (term) exactly as an unchecked call would. With a
        :class:`FiniteGuard` the test is recorded on the device instead (no host synchronisation).
        """
        if self.guard is not None:
            self.guard.record(None if self.transform is None else x, d, grad)
            return
        total = d.sum() if grad is None else d.sum() + grad.sum()
        if bool(torch.isfinite(total)):
            return
        with torch.no_grad():
            self.discriminate(self.sample(z))  # raises the generator's or a logit term's error
        bad = ~torch.isfinite(d)
        if bad.any():
            raise nonfinite_logits_error(int(bad.sum()), len(d))
        if grad is not None:
            bad = ~torch.isfinite(grad)
            if bad.any():
                raise nonfinite_gradient_error(int(bad.flatten(1).any(1).sum()), len(grad))

    def constrain(self, z: Tensor) -> Tensor:
        """Clip latents back into the prior's support (bounded priors; a no-op in data space)."""
        return z if self.prior is None or self.transform is None else self.prior.constrain(z)


def nonfinite_gradient_error(n_bad: int, batch: int) -> FloatingPointError:
    """The error for ``n_bad`` of ``batch`` samples whose logit gradient is non-finite although the logits are finite."""
    return FloatingPointError(f"the gradient of the logit, grad_z d(g(z)), holds non-finite values (NaN or inf) for "
                              f"{n_bad} of {batch} samples although the logits are finite; check the models for "
                              "operations without a finite derivative (sqrt or log at 0, ...), or lower the step size")


class FiniteGuard:
    """Deferred finiteness checks for accelerators: :meth:`record` keeps, on the device and without a
    host synchronisation, the counts of non-finite samples, logits and gradient rows of the first
    evaluation that had any; :meth:`check` (at save points and at the end) raises the error an
    immediate check would have raised, with the same counts.

    ``x`` is counted too: on a GPU the extra elementwise pass costs little, and it lets the error
    blame the generator rather than the discriminator, as the immediate check does.
    """

    def __init__(self) -> None:
        self.first: Tensor | None = None  # [bad x rows, bad logits, bad gradient rows, batch]

    def record(self, x: Tensor | None, d: Tensor, grad: Tensor | None) -> None:
        """``x``: the generator's samples (None in data space, where there is no generator)."""
        def bad_rows(t: Tensor) -> Tensor:
            return (~torch.isfinite(t)).reshape(len(t), -1).any(1).sum()

        zero = torch.zeros((), dtype=torch.int64, device=d.device)
        counts = torch.stack([zero if x is None or not x.is_floating_point() else bad_rows(x), bad_rows(d),
                              zero if grad is None else bad_rows(grad), zero + len(d)])
        if self.first is None:
            self.first = counts
        else:
            self.first = torch.where(self.first[:3].any(), self.first, counts)

    def check(self) -> None:
        """Raise for the first recorded evaluation with a non-finite value (one host synchronisation)."""
        if self.first is None:
            return
        bad_x, bad_d, bad_g, batch = self.first.tolist()
        if bad_x:
            raise nonfinite_samples_error(bad_x, batch)
        if bad_d:
            raise nonfinite_logits_error(bad_d, batch)
        if bad_g:
            raise nonfinite_gradient_error(bad_g, batch)


DETACHED = ("the discriminator's output does not depend on its input: is it detached (x.detach(), .data, "
            "numpy, or a tensor built anew)? gradient-based refiners need d(g(z)) differentiable in z")


def check_gradient_flows(grad: Tensor | None, z: Tensor) -> None:
    """Refuse a gradient of the logit that is zero for every one of several distinct samples ``z``
    (checked at step 0; identical starting points may all sit at one stationary point)."""
    if grad is not None and len(z) > 1 and not bool(grad.any()) and bool((z != z[:1]).any()):
        raise RuntimeError(DETACHED + " (or every sample starts where it is flat)")


@contextlib.contextmanager
def eval_mode(*models: object) -> Iterator[None]:
    """Every ``nn.Module`` reachable from ``models`` in eval mode with its parameters frozen
    (``requires_grad=False``); each module's flags are restored after. Reachable: see
    :mod:`dgflow.byo` (modules, ``dgflow.wrap``, closures); a callable with none gets a one-time warning.

    Refinement differentiates with respect to the input only: with frozen weights autograd keeps
    only what ``grad_z`` needs (a linear or conv layer saves its weight, not its input activation)
    and builds no weight-gradient graph, which saves memory and time and changes no number.
    """
    found: dict[int, nn.Module] = {}
    for obj in models:
        parts = obj.terms if isinstance(obj, DensityRatio) else [obj]
        found.update((id(m), m) for part in parts for m in modules_of(part, "a model passed to dgflow"))
        if isinstance(obj, nn.Module):
            found.setdefault(id(obj), obj)
    modules = list(found.values())
    saved = [(sub, sub.training) for m in modules for sub in m.modules()]
    params = {id(p): (p, p.requires_grad) for m in modules for p in m.parameters()}
    for m in modules:
        m.eval()
    for p, _ in params.values():
        p.requires_grad_(False)
    try:
        yield
    finally:
        for sub, flag in saved:
            sub.training = flag
        for p, flag in params.values():
            p.requires_grad_(flag)


def accelerate(latent: Target, target: Target, opts: SpeedOptions, z_probe: Tensor,
               labels_probe: Tensor | None = None) -> tuple[Target, Target]:
    """``(latent_target, target)`` of :func:`dgflow.refine` with the speed options applied: prepared
    networks, autocast, and the micro-batch size (from ``memory_budget_gib``, probed on ``z_probe``)."""
    if not opts.any:
        return latent, target
    if opts.memory_budget_gib is not None:
        rows = torch.arange(2) % len(z_probe)  # two probe rows (a repeated one is fine)
        z_probe = z_probe[rows]
        labels_probe = None if labels_probe is None else labels_probe[rows]
        plain = replace(opts, compile=False, max_batch_size=None, memory_budget_gib=None)
        probe = Target(prepare_model(latent.transform, plain), latent.ratio, latent.prior, labels_probe, plain)
        if target is not latent:  # data space: probe on samples
            with torch.no_grad():
                z_probe = probe.sample(z_probe)
            probe = Target(None, latent.ratio, None, labels_probe, plain)
        size = batch_for_budget(lambda z: probe.bind(None if labels_probe is None else labels_probe[:len(z)])
                                .evaluate(z, grad=True), z_probe, opts.memory_budget_gib)
        opts = replace(opts, max_batch_size=min(size, opts.max_batch_size or size))
    ratio = DensityRatio(*[prepare_model(t, opts) for t in latent.ratio.terms], offset=latent.ratio.offset)
    fast_latent = Target(prepare_model(latent.transform, opts), ratio, latent.prior, latent.labels, opts)
    fast = fast_latent if target is latent else Target(None, ratio, None, target.labels, opts)
    return fast_latent, fast
