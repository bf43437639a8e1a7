"""MH-GAN: Metropolis-Hastings with independent generator proposals.

Turner et al., "Metropolis-Hastings Generative Adversarial Networks", ICML 2019.

    calibrate D on held-out real (label 1) and generated (label 0) logits (isotonic regression)
    for each output sample, a chain:
        x_0 = a held-out real sample          (or the first proposal when no real data is given)
        for k = 1 .. chain_length:
            x' ~ g                            (independent proposal)
            accept with alpha = min(1, (1/D(x_k) - 1) / (1/D(x') - 1)) = min(1, exp(d(x') - d(x_k)))
        output x_K; a chain that never left its real start is rerun from its first
        proposal (the same proposals) with fresh uniforms, as the authors' code reruns it

The chain's stationary law is ``p_g(x) exp(d(x)) / Z``, the data law for a calibrated,
optimal discriminator. Proposal ``k`` of chain ``i`` is keyed by ``(seed, i, k)``, its
uniform by ``(seed, i, k, "mhgan-accept")`` and a rerun's by ``"mhgan-restart-accept"``.
The proposals are independent of the chain's state, so every ``d(x')`` is evaluated first,
``batch_size`` proposals per network call, and the chains then run on the logits alone;
only the selected proposals' samples are generated again.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor

from .base import Proposals, Selector, SelectResult

CALIBRATIONS = ("isotonic", "logistic", None)


@dataclass(frozen=True)
class MHGAN(Selector):
    """MH-GAN (Turner et al.): independent Metropolis-Hastings chains of ``chain_length`` proposals started at real data, with calibrated discriminator probabilities; options as in the module docstring."""
    chain_length: int = 640
    calibration: str | None = "isotonic"
    name: ClassVar[str] = "mhgan"

    def __post_init__(self) -> None:
        if not isinstance(self.chain_length, int) or self.chain_length < 1:
            raise ValueError(f"chain_length must be a whole number >= 1, got {self.chain_length!r}")
        if self.calibration not in CALIBRATIONS:
            raise ValueError(f"calibration must be one of {CALIBRATIONS}, got {self.calibration!r}")

    def fit_calibration(self, proposals: Proposals, real: Tensor):
        """Map raw logits to calibrated logits, fitted on real vs generated logits."""
        real_logits = proposals.logit(real).double().numpy()
        fake_logits = proposals.draw_logits(torch.arange(len(real)), "mhgan-calibration").double().numpy()
        scores = np.concatenate([real_logits, fake_logits])
        y = np.concatenate([np.ones(len(real_logits)), np.zeros(len(fake_logits))])
        if self.calibration == "isotonic":
            from sklearn.isotonic import IsotonicRegression

            model = IsotonicRegression(out_of_bounds="clip", y_min=0.0, y_max=1.0).fit(scores, y)
            predict = model.predict
        else:
            from sklearn.linear_model import LogisticRegression

            model = LogisticRegression().fit(scores[:, None], y)
            predict = lambda s: model.predict_proba(s[:, None])[:, 1]  # noqa: E731

        def calibrated(d: Tensor) -> Tensor:
            p = np.clip(predict(d.double().reshape(-1).numpy()), 1e-6, 1 - 1e-6)
            return torch.from_numpy(np.log(p) - np.log1p(-p)).reshape(d.shape)

        return calibrated

    def select(self, proposals: Proposals, n: int, progress: bool = True) -> SelectResult:
        """Run ``n`` chains and return the state each ends in (a chain that never leaves its real start is rerun with fresh uniforms)."""
        real = proposals.real
        calibrate = lambda d: d.double()  # noqa: E731
        real_init = None
        if self.calibration is not None:
            if real is None or len(real) < 4:
                raise ValueError("MH-GAN calibration needs held-out real samples: pass real=<tensor of real data> "
                                 "(at least a few hundred), or calibration=None to use the raw discriminator")
            half = len(real) // 2
            calibrate = self.fit_calibration(proposals, real[:half])
            real_init = real[half:]
        elif real is not None and len(real):
            real_init = real
        chains = torch.arange(n)
        d = calibrate(proposals.chain_logits(chains, self.chain_length, "mhgan", progress, "MH-GAN"))  # [n, K]
        if real_init is None:  # each chain starts at its first proposal
            state, accepts = run_chains(d, proposals, chains, "mhgan-accept")
            restarted = torch.zeros(n, dtype=torch.bool)
        else:
            pick = torch.as_tensor(proposals.uniform(chains, "mhgan-init") * len(real_init)).long()
            d_real = calibrate(proposals.logit(real_init[pick]))
            state, accepts = run_chains(d, proposals, chains, "mhgan-accept", start=d_real)
            restarted = state < 0  # never left its real start: rerun from the first proposal, fresh uniforms
            if restarted.any():
                state[restarted] = run_chains(d[restarted], proposals, chains[restarted], "mhgan-restart-accept")[0]
        z, x = proposals.samples_at(chains, state, "mhgan")
        tested = n * (self.chain_length - (real_init is None))  # without real data the first proposal only starts
        return SelectResult(
            x=x, z=z, logits=d[chains, state].float(), acceptance_rate=accepts / max(tested, 1),
            n_proposals=n * self.chain_length, method=self.name, options=self.options(),
            info={"restarted_chains": int(restarted.sum()), "calibration": self.calibration,
                  "ranks": proposals.ranks})


def run_chains(d: Tensor, proposals: Proposals, chains: Tensor, stream: str,
               start: Tensor | None = None) -> tuple[Tensor, int]:
    """Independence Metropolis-Hastings over precomputed proposal logits ``d`` (``[chains, K]``).

    Chain ``i`` starts at a point with logit ``start[i]`` (state ``-1``), or at its first
    proposal when ``start`` is None; proposal ``k`` is accepted when ``u_ik <= exp(d_ik - d_current)``
    with ``u_ik`` the uniform of chain ``i`` at step ``k`` of ``stream``. Returns the index of the
    proposal each chain ends at (``-1``: never moved) and the number of accepted proposals.
    """
    first = 0 if start is not None else 1
    state = torch.full((len(d),), -1 if start is not None else 0, dtype=torch.long)
    current = start.clone() if start is not None else d[:, 0].clone()
    accepts = 0
    for k in range(first, d.shape[1]):
        log_u = torch.log(proposals.uniform(chains, stream, step=k))
        accept = log_u <= d[:, k] - current
        current = torch.where(accept, d[:, k], current)
        state = torch.where(accept, k, state)
        accepts += int(accept.sum())
    return state, accepts
