"""The density-ratio estimate every method uses: ``d(x) ~ log(mu(x) / p_g(x))``.

**The logit convention** (one place for every method): a discriminator passed to dgflow returns
the **logit** ``d(x) = log(D*(x) / (1 - D*(x)))``, which at the optimum of the GAN's BCE loss is
``log mu(x) / p_g(x)`` (``mu`` the data, ``p_g`` the generator). Concretely:

* **Outputs**: a tensor shaped ``[B]``, ``[B, 1]`` or ``[B, 1, ..., 1]`` (a DCGAN's ``[B, 1, 1, 1]``);
  a tuple or list whose first element is that tensor; a dataclass or a mapping (e.g. a Hugging
  Face ``ModelOutput``) whose first field is. Anything else is an error naming the shape.
* **Probabilities** (a discriminator ending in ``nn.Sigmoid``, the usual DCGAN): wrap it as
  ``dgflow.from_probability(D)``. Used as a logit, ``sigmoid`` would scale every gradient by
  ``p (1 - p)``; so when all of a discriminator's outputs on its first batch (of at least
  ``PROBE_MIN`` samples) lie in ``[0, 1]``, dgflow warns once, and
  ``DensityRatio(D, strict=True)`` makes that an error.
* **WGAN critics** are logits up to an additive constant: the KL flow, DDLS, DOT, DRS and MH-GAN
  ignore the constant; for the JS / logD flows fix it with :func:`self_normalized` (or
  :func:`dgflow.normalize`, which draws the generated samples itself).
* **Corrector terms** (below) follow the same rules; their logits are added.

A discriminator logit is one such estimate. For a generator without a discriminator of
its own (VAE, flow, MMD-GAN), the density-ratio corrector adds terms whose logits sum
by telescoping, ``p_theta/mu = (p_phi/mu) (p_theta/p_phi)``, so
``d(x) = d_phi(x) + d_lambda(x)``. :class:`DensityRatio` is that sum, with the checks
that turn a wrong shape or a NaN into a clear error.
"""

from __future__ import annotations

import dataclasses
import warnings
import weakref
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .byo import reachable_modules, user_stacklevel

LogitFn = Callable[..., Tensor]

PROBE_MIN = 8  # the probability check waits for a batch of at least this many samples
_warned_probability: weakref.WeakSet = weakref.WeakSet()


class DensityRatio(nn.Module):
    """``d(x) = sum_k d_k(x)`` over logit terms; call as ``ratio(x)`` or ``ratio(x, labels)``.

    Terms are called ``term(x)``, or ``term(x, labels)`` when labels are given (wrap an
    unconditional term as ``lambda x, y: D(x)`` in a conditional run). Outputs follow the
    rules of the module docstring (``[B]``, ``[B, 1, ..., 1]``, a tuple / dataclass whose first
    field is the logit); a wrong shape or a non-finite value raises. ``offset`` is a constant
    added to the sum (see :func:`self_normalized`). A term whose outputs on its first batch
    all lie in ``[0, 1]`` looks like a probability: a warning, or with ``strict=True`` an error.
    """

    def __init__(self, *terms: LogitFn | Sequence[LogitFn], offset: float = 0.0, strict: bool = False):
        super().__init__()
        flat: list[LogitFn] = []
        for t in terms:
            if isinstance(t, DensityRatio):
                flat.extend(t.terms)
                offset += t.offset
                strict = strict or t.strict
            elif isinstance(t, (list, tuple)):
                flat.extend(t)
            elif t is not None:
                flat.append(t)
        if not flat:
            raise ValueError("DensityRatio needs at least one discriminator (logit) term")
        for t in flat:
            if not callable(t):
                raise TypeError(f"a density-ratio term must be callable (an nn.Module or function), got {type(t).__name__}")
        self.terms = flat
        self.offset = float(offset)
        self.strict = bool(strict)
        self._probed = [False] * len(flat)
        # register the modules the terms reach (also inside a lambda or dgflow.wrap), so .to(),
        # .eval(), freezing and state_dict() see them
        found = {id(m): m for t in flat for m in reachable_modules(t)}
        self.modules_ = nn.ModuleList(found.values())

    def forward(self, x: Tensor, labels: Tensor | None = None, *, check_finite: bool = True) -> Tensor:
        """``check_finite=False``: check types and shapes only (a caller that checks finiteness itself)."""
        total = None
        for k, term in enumerate(self.terms):
            out = term(x) if labels is None else term(x, labels)
            who = _term_name(k, term)
            d = check_logits(out, len(x), who, check_finite)
            if not self._probed[k] and len(d) >= PROBE_MIN and not isinstance(term, FromProbability):
                self._probed[k] = True
                check_not_probability(d, term, who, self.strict)
            total = d if total is None else total + d
        return total + self.offset if self.offset else total


class FromProbability(nn.Module):
    """A discriminator that returns ``P(real | x)`` seen as one that returns the logit (see :func:`from_probability`)."""

    def __init__(self, discriminator: Callable[..., Any], eps: float = 1e-6):
        super().__init__()
        if not callable(discriminator):
            raise TypeError(f"from_probability needs a callable discriminator, got {type(discriminator).__name__}")
        if not 0 < eps < 0.5:
            raise ValueError(f"eps must lie in (0, 0.5), got {eps!r}")
        self.eps = float(eps)
        exact = isinstance(discriminator, nn.Sequential) and len(discriminator) > 1 and \
            isinstance(discriminator[-1], nn.Sigmoid)
        self.discriminator = discriminator[:-1] if exact else discriminator
        self.exact = exact  # the final Sigmoid was dropped: its input is the logit itself
        self.found = nn.ModuleList(reachable_modules(discriminator))

    def forward(self, *args: Any, **kwargs: Any) -> Tensor:
        out = unwrap_output(self.discriminator(*args, **kwargs))
        if self.exact:
            return out
        return torch.logit(out.clamp(self.eps, 1 - self.eps))


def from_probability(discriminator: Callable[..., Any], eps: float = 1e-6) -> FromProbability:
    """``x -> logit(clamp(D(x), eps, 1 - eps))``: a discriminator that outputs probabilities
    (ends in ``nn.Sigmoid``) turned into the logit ``log(D / (1 - D))`` dgflow expects.

    For an ``nn.Sequential`` whose last layer is ``nn.Sigmoid`` the sigmoid is dropped instead,
    which gives the same logit without the clamp (and keeps the gradient where ``D`` saturates
    in float32). Arguments (``x``, labels, ``sigma``) are passed through, so it also wraps
    conditional and time-dependent discriminators.
    """
    return FromProbability(discriminator, eps)


def self_normalized(ratio: LogitFn | DensityRatio, generated_logits: Tensor) -> DensityRatio:
    """``d - log E_{p_g}[exp d]``: the shift that makes ``E_{p_g}[exp d] = 1``.

    Every exact log density ratio satisfies ``E_{p_g}[mu/p_g] = 1``. A WGAN critic is defined
    only up to an additive constant, which the KL flow, DDLS, DOT, DRS and MH-GAN ignore but
    the JS and logD scales ``sigmoid(+-d)`` do not; this fixes the constant from logits of
    generated samples (``generated_logits``, e.g. 10,000 of them).
    """
    d = generated_logits.detach().double().flatten()
    log_mean_exp = torch.logsumexp(d, 0) - torch.log(torch.tensor(float(len(d)), dtype=torch.float64))
    return DensityRatio(ratio, offset=-float(log_mean_exp))


def unwrap_output(out: object) -> object:
    """The logit tensor inside a model output: a tuple's or list's first element, a mapping's
    (e.g. ``ModelOutput``) first value, a dataclass's first field; a tensor as it is."""
    for _ in range(4):  # nested containers, a few levels
        if isinstance(out, Tensor):
            return out
        if isinstance(out, (tuple, list)) and out:
            out = out[0]
        elif isinstance(out, Mapping) and out:
            out = next(iter(out.values()))
        elif dataclasses.is_dataclass(out) and not isinstance(out, type) and dataclasses.fields(out):
            out = getattr(out, dataclasses.fields(out)[0].name)
        else:
            return out
    return out


def check_not_probability(d: Tensor, term: object, who: str, strict: bool = False) -> None:
    """Warn (once per discriminator) or, with ``strict``, raise when every output lies in ``[0, 1]``."""
    with torch.no_grad():
        inside = bool(((d >= 0) & (d <= 1)).all())
    if not inside:
        return
    msg = (f"every output of {who} on its first batch ({len(d)} samples) lies in [0, 1]: it looks like a "
           "probability P(real | x) (a discriminator ending in nn.Sigmoid), but dgflow expects the logit "
           "log(D / (1 - D)). Pass dgflow.from_probability(D) instead of D; if these really are logits, "
           "ignore this warning")
    if strict:
        raise ValueError(msg)
    try:
        if term in _warned_probability:
            return
        _warned_probability.add(term)
    except TypeError:  # not weak-referenceable: warn every time
        pass
    warnings.warn(msg, UserWarning, stacklevel=user_stacklevel())


def check_logits(out: object, batch: int, who: str = "the discriminator", check_finite: bool = True) -> Tensor:
    """Validate a logit output (see the module docstring for what is accepted) and return it shaped ``[B]``."""
    out = unwrap_output(out)
    if not isinstance(out, Tensor):
        raise TypeError(f"{who} returned {type(out).__name__}; it must return a tensor of logits shaped [B] or [B, 1] "
                        "(or a tuple / dataclass whose first field is that tensor)")
    if out.ndim >= 2 and out.shape[0] == batch and all(s == 1 for s in out.shape[1:]):
        out = out.reshape(batch)
    if out.shape != (batch,):
        raise ValueError(f"{who} returned shape {tuple(out.shape)} for a batch of {batch}; it must return one logit "
                         f"per sample, shaped [{batch}] or [{batch}, 1] (or [{batch}, 1, ..., 1]; a vector-valued critic needs a "
                         "density-ratio corrector instead)")
    if check_finite:
        bad = ~torch.isfinite(out)
        if bad.any():
            raise nonfinite_logits_error(int(bad.sum()), batch, who)
    return out


def nonfinite_logits_error(n_bad: int, batch: int, who: str = "the discriminator") -> FloatingPointError:
    """The error for ``n_bad`` of ``batch`` non-finite logits returned by ``who``."""
    return FloatingPointError(f"{who} returned {n_bad} non-finite logits (NaN or inf) out of {batch}; "
                              "check the model and its weights, or lower the step size if it happened mid-refinement")


def nonfinite_samples_error(n_bad: int, batch: int, who: str = "the generator") -> FloatingPointError:
    """The error for ``n_bad`` of ``batch`` non-finite samples returned by ``who``."""
    return FloatingPointError(f"{who} returned non-finite values (NaN or inf) for {n_bad} of {batch} samples; "
                              "check its weights, or lower the step size if the latents diverged")


def check_samples(x: object, batch: int, who: str = "the generator", check_finite: bool = True) -> Tensor:
    """Validate a model's output (a tensor whose first dimension is ``batch``, finite unless ``check_finite=False``) and return it."""
    if not isinstance(x, Tensor):
        raise TypeError(f"{who} returned {type(x).__name__}; it must return a tensor of samples")
    if x.ndim == 0 or x.shape[0] != batch:
        raise ValueError(f"{who} returned shape {tuple(x.shape)} for {batch} latents; the first dimension must be the batch")
    if check_finite:
        bad = ~torch.isfinite(x)
        if bad.any():
            raise nonfinite_samples_error(int(bad.flatten(1).any(1).sum()), batch, who)
    return x


def _term_name(k: int, term: object) -> str:
    name = type(term).__name__ if isinstance(term, nn.Module) else getattr(term, "__name__", "function")
    return "the discriminator" if k == 0 else f"density-ratio term {k} ({name})"
