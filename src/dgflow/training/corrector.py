"""Density-ratio corrector (DGflow paper, Sec. 3.2): a discriminator for a generator that has none.

Given a GAN pair ``(g_phi, D_phi)`` trained on the same data as the target generator
``g_theta``, copy ``D_phi`` into ``D_lambda`` and fine-tune it with binary cross-entropy to
tell ``g_phi``'s samples (label 1) from ``g_theta``'s (label 0):

    L(lambda) = E_{x ~ g_phi}[softplus(-d_lambda(x))] + E_{x ~ g_theta}[softplus(d_lambda(x))]

At the optimum ``d_lambda = log(p_phi / p_theta)``, so by telescoping
``d_phi + d_lambda = log(mu / p_phi) + log(p_phi / p_theta) = log(mu / p_theta)``:
refine ``g_theta`` with ``dgflow.refine(g_theta, D_phi, z, corrector=D_lambda)``.
"""

from __future__ import annotations

import copy
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from ..progress import progress_bar as tqdm
from .checkpointing import Resumable


def train_corrector(
    discriminator_phi: nn.Module,
    sample_phi: Callable[[int], Tensor],
    sample_theta: Callable[[int], Tensor],
    iterations: int = 1000,
    batch_size: int = 64,
    lr: float = 1e-4,
    betas: tuple[float, float] = (0.5, 0.999),
    progress: bool = True,
    log_every: int = 100,
    checkpoint: Resumable | None = None,
) -> tuple[nn.Module, list[dict[str, float]]]:
    """Return ``D_lambda`` (initialised from ``discriminator_phi``, which is left untouched) and the loss log.

    ``sample_phi(n)`` / ``sample_theta(n)`` return ``n`` fresh samples of ``g_phi`` / ``g_theta``
    (generated without gradient), on the discriminator's device. ``checkpoint``: where to save every few
    minutes, on SIGINT / SIGTERM and at the end, and to resume from (role ``"corrector"``; register the
    samplers' random generators with it too).
    """
    if iterations < 1 or batch_size < 1:
        raise ValueError(f"iterations and batch_size must be >= 1, got {iterations} and {batch_size}")
    corrector = copy.deepcopy(discriminator_phi).train()
    for p in corrector.parameters():
        p.requires_grad_(True)
    opt = torch.optim.Adam(corrector.parameters(), lr=lr, betas=betas)
    ck = checkpoint or Resumable(None)
    start, log = ck.start({"corrector": corrector}, {"opt": opt}, {}, iterations, progress)
    with ck:
        for it in tqdm(range(start + 1, iterations + 1), initial=start, total=iterations, desc="corrector",
                       disable=None if progress else True):
            with torch.no_grad():
                x_phi, x_theta = sample_phi(batch_size), sample_theta(batch_size)
            d_phi, d_theta = corrector(x_phi).reshape(-1), corrector(x_theta).reshape(-1)
            loss = F.softplus(-d_phi).mean() + F.softplus(d_theta).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            if not torch.isfinite(loss):
                raise FloatingPointError(f"corrector training diverged at iteration {it}; lower lr")
            if it % log_every == 0 or it == iterations:
                acc = 0.5 * ((d_phi > 0).float().mean() + (d_theta < 0).float().mean())
                log.append({"iteration": it, "loss": loss.item(), "accuracy": acc.item()})
            ck.step(it, final=it == iterations)
    return corrector.eval(), log
