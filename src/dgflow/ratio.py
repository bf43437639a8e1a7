"""The density-ratio estimate every method uses: ``d(x) ~ log(mu(x) / p_g(x))``.

A discriminator logit is one such estimate. For a generator without a discriminator of
its own (VAE, flow, MMD-GAN), the density-ratio corrector adds terms whose logits sum
by telescoping, ``p_theta/mu = (p_phi/mu) (p_theta/p_phi)``, so
``d(x) = d_phi(x) + d_lambda(x)``. :class:`DensityRatio` is that sum, with the checks
that turn a wrong shape or a NaN into a clear error.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor, nn

LogitFn = Callable[..., Tensor]


class DensityRatio(nn.Module):
    """``d(x) = sum_k d_k(x)`` over logit terms; call as ``ratio(x)`` or ``ratio(x, labels)``.

    Terms are called ``term(x)``, or ``term(x, labels)`` when labels are given (wrap an
    unconditional term as ``lambda x, y: D(x)`` in a conditional run). Outputs shaped
    ``[B]`` or ``[B, 1]`` are accepted; anything else, or a non-finite value, raises.
    ``offset`` is a constant added to the sum (see :func:`self_normalized`).
    """

    def __init__(self, *terms: LogitFn | Sequence[LogitFn], offset: float = 0.0):
        super().__init__()
        flat: list[LogitFn] = []
        for t in terms:
            if isinstance(t, DensityRatio):
                flat.extend(t.terms)
                offset += t.offset
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
        # register modules so .to(), .eval() and state_dict() see them
        self.modules_ = nn.ModuleList([t for t in flat if isinstance(t, nn.Module)])

    def forward(self, x: Tensor, labels: Tensor | None = None, *, check_finite: bool = True) -> Tensor:
        """``check_finite=False``: check types and shapes only (a caller that checks finiteness itself)."""
        total = None
        for k, term in enumerate(self.terms):
            out = term(x) if labels is None else term(x, labels)
            d = check_logits(out, len(x), _term_name(k, term), check_finite)
            total = d if total is None else total + d
        return total + self.offset if self.offset else total


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


def check_logits(out: object, batch: int, who: str = "the discriminator", check_finite: bool = True) -> Tensor:
    """Validate a logit output and return it shaped ``[B]``."""
    if not isinstance(out, Tensor):
        raise TypeError(f"{who} returned {type(out).__name__}; it must return a tensor of logits shaped [B] or [B, 1]")
    if out.ndim == 2 and out.shape[1] == 1:
        out = out[:, 0]
    if out.shape != (batch,):
        raise ValueError(f"{who} returned shape {tuple(out.shape)} for a batch of {batch}; it must return one logit "
                         f"per sample, shaped [{batch}] or [{batch}, 1] (a vector-valued critic needs a "
                         "density-ratio corrector instead)")
    if check_finite:
        bad = ~torch.isfinite(out)
        if bad.any():
            raise nonfinite_logits_error(int(bad.sum()), batch, who)
    return out


def nonfinite_logits_error(n_bad: int, batch: int, who: str = "the discriminator") -> FloatingPointError:
    return FloatingPointError(f"{who} returned {n_bad} non-finite logits (NaN or inf) out of {batch}; "
                              "check the model and its weights, or lower the step size if it happened mid-refinement")


def nonfinite_samples_error(n_bad: int, batch: int, who: str = "the generator") -> FloatingPointError:
    return FloatingPointError(f"{who} returned non-finite values (NaN or inf) for {n_bad} of {batch} samples; "
                              "check its weights, or lower the step size if the latents diverged")


def check_samples(x: object, batch: int, who: str = "the generator", check_finite: bool = True) -> Tensor:
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
