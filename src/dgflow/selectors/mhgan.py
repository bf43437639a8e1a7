"""MH-GAN: Metropolis-Hastings with independent generator proposals.

Turner et al., "Metropolis-Hastings Generative Adversarial Networks", ICML 2019.

    calibrate D on held-out real (label 1) and generated (label 0) logits (isotonic regression)
    for each output sample, a chain:
        x_0 = a held-out real sample          (or the first proposal when no real data is given)
        for k = 1 .. chain_length:
            x' ~ g                            (independent proposal)
            accept with alpha = min(1, (1/D(x_k) - 1) / (1/D(x') - 1)) = min(1, exp(d(x') - d(x_k)))
        output x_K; a chain that never left its real start is rerun from its first proposal

The chain's stationary law is ``p_g(x) exp(d(x)) / Z``, the data law for a calibrated,
optimal discriminator. Proposal ``k`` of chain ``i`` is keyed by ``(seed, i, k)``.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor
from tqdm.auto import tqdm

from .base import Proposals, SelectResult, Selector

CALIBRATIONS = ("isotonic", "logistic", None)


@dataclass
class MHGAN(Selector):
    chain_length: int = 640
    calibration: str | None = "isotonic"
    name = "mhgan"

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
            p = np.clip(predict(d.double().numpy()), 1e-6, 1 - 1e-6)
            return torch.from_numpy(np.log(p) - np.log1p(-p))

        return calibrated

    def select(self, proposals: Proposals, n: int, progress: bool = True) -> SelectResult:
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
        if real_init is not None:
            pick = torch.as_tensor(proposals.uniform(chains, "mhgan-init") * len(real_init)).long()
            x_a = real_init[pick]
            d_a = calibrate(proposals.logit(x_a))
            z_a = torch.full((n, *proposals.target.prior.shape), float("nan"))
        moved = torch.zeros(n, dtype=torch.bool)
        accepts = 0
        for k in tqdm(range(self.chain_length), desc="MH-GAN", disable=None if progress else True, leave=False):
            z_p, x_p, raw = proposals.draw(chains, "mhgan", step=k)
            d_p = calibrate(raw)
            if k == 0:  # chain B starts at the first proposal
                z_b, x_b, d_b = z_p, x_p, d_p
                if real_init is None:
                    z_a, x_a, d_a = z_p, x_p, d_p
                    moved[:] = True
                    continue
            log_u = torch.log(proposals.uniform(chains, "mhgan-accept", step=k))
            acc_a = log_u < d_p - d_a
            acc_b = log_u < d_p - d_b
            accepts += int(acc_a.sum())
            moved |= acc_a
            z_a, x_a, d_a = _where(acc_a, (z_p, x_p, d_p), (z_a, x_a, d_a))
            if k > 0:
                z_b, x_b, d_b = _where(acc_b, (z_p, x_p, d_p), (z_b, x_b, d_b))
        z, x, d = _where(moved, (z_a, x_a, d_a), (z_b, x_b, d_b))
        tested = n * (self.chain_length - (real_init is None))  # without real data the first proposal only starts
        return SelectResult(
            x=x, z=z, logits=d.float(), acceptance_rate=accepts / max(tested, 1),
            n_proposals=n * self.chain_length, method=self.name, options=self.options(),
            info={"restarted_chains": int((~moved).sum()), "calibration": self.calibration})


def _where(mask: Tensor, new: tuple[Tensor, ...], old: tuple[Tensor, ...]) -> tuple[Tensor, ...]:
    return tuple(torch.where(mask.reshape(-1, *[1] * (a.ndim - 1)), a.to(b.dtype), b) for a, b in zip(new, old))
