"""DRS: Discriminator Rejection Sampling.

Azadi et al., "Discriminator Rejection Sampling", ICLR 2019.

    d_M = max logit over a burn-in of `burn_in` proposals
    for each proposal x_i (in order):
        d_M <- max(d_M, d(x_i))                              # raised whenever a larger logit is seen
        F_i = d_i - d_M - log(1 - exp(d_i - d_M - eps))
        gamma = `percentile` of F over the burn-in logits (with the current d_M)
        accept with probability sigmoid(F_i - gamma)

``percentile=None`` gives exact rejection sampling, accepting with ``exp(d_i - d_M)``,
which samples ``p_g(x) exp(d(x)) / Z`` (the data law for an optimal discriminator)
whenever ``d_M`` bounds the logit. The running maximum is a cumulative max over the
proposal sequence and proposal ``i``'s latent and uniform are keyed by ``i``, so the
selected samples do not depend on the batch size.

``gamma_per_chain=True`` follows the authors' code instead (the rejection picker of the
MH-GAN reference, Turner et al.'s ``mh.rejection_sample``): output sample ``i`` gets its own
chain of ``chain_length`` (640) proposals, keyed ``(seed, i, k)``, with ``d_M`` = the
burn-in maximum raised along that chain only,

    gamma_i = `percentile` of F over the chain's own proposals
    output = its first proposal accepted with probability sigmoid(F_k - gamma_i),
             or, when none is, the proposal with the largest logit (the authors' fallback)

Every proposal of every chain is evaluated (blocks of ``batch_size`` per network call).
The default takes gamma from the burn-in logits (recomputed only when d_M rises) and
stops at the n-th acceptance; the authors' gamma is re-estimated from each chain's 640
proposals, so some 5% of every chain pass with probability > 1/2 whatever the chain.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from ..checks import check_int, check_positive
from ..progress import progress_bar as tqdm
from .base import Proposals, Selector, SelectResult

AUTHORS_CHAIN_LENGTH = 640  # 10 batches of 64 proposals per output sample in the MH-GAN reference code


@dataclass(frozen=True)
class DRS(Selector):
    """Discriminator rejection sampling (Azadi et al.): accept a proposal with probability ``sigmoid(F)``, ``F = d - D_max - log(1 - exp(d - D_max - eps)) - gamma``; options as in the module docstring."""
    burn_in: int = 10_000
    percentile: float | None = 95.0
    eps: float = 1e-6
    max_proposals: int | None = None  # default: 1000 per requested sample
    gamma_per_chain: bool = False  # True: the authors' per-chain gamma, cap and argmax fallback
    chain_length: int | None = None  # proposals per chain (gamma_per_chain only; default 640, the authors')
    name: ClassVar[str] = "drs"

    def __post_init__(self) -> None:
        if not isinstance(self.burn_in, int) or self.burn_in < 1:
            raise ValueError(f"burn_in must be a whole number >= 1, got {self.burn_in!r}")
        if self.percentile is not None and not 0 <= self.percentile <= 100:
            raise ValueError(f"percentile must lie in [0, 100] or be None (exact rejection), got {self.percentile!r}")
        check_positive("eps", self.eps, allow_zero=True)
        if self.gamma_per_chain and self.max_proposals is not None:
            raise ValueError("max_proposals caps DRS's default rule; with gamma_per_chain=True every output sample "
                             "uses chain_length proposals (default 640): set chain_length instead")
        if self.chain_length is not None:
            if not self.gamma_per_chain:
                raise ValueError("chain_length applies to DRS's per-chain rule only: pass gamma_per_chain=True "
                                 "too, or drop chain_length (the default rule walks one proposal sequence)")
            check_int("chain_length", self.chain_length, 1)

    def log_accept(self, d: Tensor, d_max: Tensor, burn_logits: Tensor) -> Tensor:
        """``log P(accept)`` for logits ``d`` with running maxima ``d_max`` (float64)."""
        if self.percentile is None:
            return d - d_max
        f = self._f(d, d_max)
        gamma = torch.empty_like(d)
        for m in torch.unique(d_max):  # d_M changes rarely: one percentile per distinct value
            sel = d_max == m
            gamma[sel] = float(np.percentile(self._f(burn_logits, m).numpy(), self.percentile))
        return torch.nn.functional.logsigmoid(f - gamma)

    def _f(self, d: Tensor, d_max: Tensor) -> Tensor:
        delta = d - d_max
        return delta - torch.log1p(-torch.exp(delta - self.eps))

    def select(self, proposals: Proposals, n: int, progress: bool = True) -> SelectResult:
        """Draw ``n`` accepted samples (the default rule, or one chain per sample with ``gamma_per_chain``)."""
        ids = torch.arange(self.burn_in)
        burn_logits = proposals.draw_logits(ids, "drs-burn-in").double()
        if self.gamma_per_chain:
            return self.select_per_chain(proposals, n, burn_logits.max(), progress)
        d_max = burn_logits.max()
        limit = self.max_proposals or 1000 * max(n, 1)
        chosen_z, chosen_x, chosen_d = [], [], []
        count, start = 0, 0
        with tqdm(total=n, desc="DRS", disable=None if progress else True, leave=False) as bar:
            while count < n:
                if start >= limit:
                    raise RuntimeError(f"DRS accepted only {count} of {n} samples in {limit} proposals; the "
                                       "discriminator rejects almost everything. Raise max_proposals, lower the "
                                       "percentile, or check the discriminator")
                ids = torch.arange(start, min(start + proposals.batch_size, limit))
                z, x, d = proposals.draw(ids, "drs")
                d = d.double()
                running = torch.maximum(torch.cummax(d, 0).values, d_max)
                log_p = self.log_accept(d, running, burn_logits)
                accept = torch.log(proposals.uniform(ids, "drs-accept")) < log_p
                take = torch.nonzero(accept).flatten()[: n - count]
                chosen_z.append(z[take])
                chosen_x.append(x[take])
                chosen_d.append(d[take].float())
                count += len(take)
                bar.update(len(take))
                done = count == n  # stop right after the n-th accepted proposal
                d_max = running[take[-1]] if done else running[-1]
                start = int(ids[take[-1]]) + 1 if done else int(ids[-1]) + 1
        return SelectResult(
            x=torch.cat(chosen_x), z=torch.cat(chosen_z), logits=torch.cat(chosen_d),
            acceptance_rate=n / max(start, 1), n_proposals=start, method=self.name,
            options=self.options(), info={"d_max": float(d_max), "burn_in_max": float(burn_logits.max())})

    def select_per_chain(self, proposals: Proposals, n: int, burn_in_max: Tensor, progress: bool) -> SelectResult:
        """The authors' rule: one chain of ``chain_length`` proposals per output sample."""
        chains, length = torch.arange(n), self.chain_length or AUTHORS_CHAIN_LENGTH
        d = proposals.chain_logits(chains, length, "drs-chain", progress, "DRS").double()  # [n, K]
        running = torch.maximum(torch.cummax(d, 1).values, burn_in_max)
        if self.percentile is None:
            log_p = d - running
        else:
            f = self._f(d, running)
            gamma = torch.from_numpy(np.percentile(f.numpy(), self.percentile, axis=1))
            log_p = torch.nn.functional.logsigmoid(f - gamma[:, None])
        log_u = torch.stack([torch.log(proposals.uniform(chains, "drs-chain-accept", step=k))
                             for k in range(length)], 1)
        accept = log_u <= log_p
        accepted = accept.any(1)
        first = torch.argmax(accept.to(torch.uint8), 1)  # the first accepted proposal
        pick = torch.where(accepted, first, torch.argmax(d, 1))  # none accepted: the largest logit
        z, x = proposals.samples_at(chains, pick, "drs-chain")
        tried = torch.where(accepted, first + 1, length).sum()
        return SelectResult(
            x=x, z=z, logits=d[chains, pick].float(), acceptance_rate=int(accepted.sum()) / int(tried),
            n_proposals=n * length, method=self.name, options=self.options(),
            info={"fallback_chains": int((~accepted).sum()), "burn_in_max": float(burn_in_max),
                  "ranks": proposals.ranks})
