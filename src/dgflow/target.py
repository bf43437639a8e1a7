"""What a refiner sees: a position ``z`` mapped to a sample ``x`` and its logit ``d``.

In latent space the map is the generator, ``x = g(z)``; in data space it is the
identity and the position is the sample itself. Refiners only call
:meth:`Target.evaluate`, so one refiner serves both spaces.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import NamedTuple

import torch
from torch import Tensor, nn

from .priors import Prior
from .ratio import DensityRatio, check_samples
from .speed import SpeedOptions, to_layout


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
                 prior: Prior | None, labels: Tensor | None = None, speed: SpeedOptions | None = None):
        self.transform = transform  # None: data space (identity)
        self.ratio = ratio
        self.prior = prior
        self.labels = labels
        self.speed = speed

    @property
    def space(self) -> str:
        return "data" if self.transform is None else "latent"

    def bind(self, labels: Tensor | None) -> Target:
        """The same target for a batch with these labels."""
        return Target(self.transform, self.ratio, self.prior, labels, self.speed)

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

    def sample(self, z: Tensor) -> Tensor:
        if self.transform is None:
            return z
        chunks = self._chunks(len(z))
        if chunks:
            return torch.cat([t.sample(z[rows]) for rows, t in chunks])
        labels = self.labels_for(len(z))
        with self._autocast(z):
            x = self.transform(z) if labels is None else self.transform(z, labels)
        return check_samples(self._float(x, z), len(z))

    def discriminate(self, x: Tensor) -> Tensor:
        chunks = self._chunks(len(x))
        if chunks:
            return torch.cat([t.discriminate(x[rows]) for rows, t in chunks])
        with self._autocast(x):
            d = self.ratio(to_layout(x, self.speed), self.labels_for(len(x)))
        return self._float(d, x)

    @torch.no_grad()
    def logit(self, z: Tensor) -> Tensor:
        return self.discriminate(self.sample(z))

    def evaluate(self, z: Tensor, grad: bool = True) -> Evaluation:
        """Forward (and backward to ``z`` when ``grad``); parameters get no ``.grad``."""
        chunks = self._chunks(len(z))
        if chunks:  # every row's result depends on that row only: evaluate in pieces
            parts = [t.evaluate(z[rows], grad) for rows, t in chunks]
            return Evaluation(*(None if p[0] is None else torch.cat(p) for p in zip(*parts)))
        if not grad:
            with torch.no_grad():
                x = self.sample(z)
                return Evaluation(z, x, self.discriminate(x), None)
        with torch.enable_grad():
            z_ = z.detach().requires_grad_(True)
            x = self.sample(z_)
            d = self.discriminate(x)
            if not d.requires_grad:
                raise RuntimeError("the discriminator's output carries no gradient back to its input (did the "
                                   "generator or discriminator run under torch.no_grad(), detach, or leave autograd?); "
                                   "gradient-based refiners need d(g(z)) differentiable in z")
            (g,) = torch.autograd.grad(d.sum(), z_, allow_unused=True)
            if g is None:
                raise RuntimeError(DETACHED)
        return Evaluation(z.detach(), x.detach(), d.detach(), g)

    def constrain(self, z: Tensor) -> Tensor:
        return z if self.prior is None or self.transform is None else self.prior.constrain(z)


DETACHED = ("the discriminator's output does not depend on its input: is it detached (x.detach(), .data, "
            "numpy, or a tensor built anew)? gradient-based refiners need d(g(z)) differentiable in z")


def check_gradient_flows(grad: Tensor | None, z: Tensor) -> None:
    """Refuse a gradient of the logit that is zero for every one of several distinct samples ``z``
    (checked at step 0; identical starting points may all sit at one stationary point)."""
    if grad is not None and len(z) > 1 and not bool(grad.any()) and bool((z != z[:1]).any()):
        raise RuntimeError(DETACHED + " (or every sample starts where it is flat)")


@contextlib.contextmanager
def eval_mode(*models: object) -> Iterator[None]:
    """Every ``nn.Module`` among ``models`` in eval mode with its parameters frozen
    (``requires_grad=False``); each module's flags are restored after.

    Refinement differentiates with respect to the input only: with frozen weights autograd keeps
    only what ``grad_z`` needs (a linear or conv layer saves its weight, not its input activation)
    and builds no weight-gradient graph, which saves memory and time and changes no number.
    """
    modules = [m for m in models if isinstance(m, nn.Module)]
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
