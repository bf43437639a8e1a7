"""The refine loop: a refiner run over batches of samples, keeping the states of chosen steps.

One plain function in the manner of k-diffusion's samplers: a method, a target, the starting
latents, each sample's noise (keyed by ``(seed, sample_id)``) and the steps to keep, with a
callback after every step and a progress bar::

    for each batch:
        state = method.init(target, start)
        for n in range(method.steps):
            state, info = method.step(target, state, n, noise)
            callback({"step": n + 1, "state": state, "info": info, ...})
            keep (z, x, logit) if n + 1 is a kept step

The method comes prepared (shared statistics, automatic step size: :func:`dgflow.refine`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor

from .progress import progress_bar
from .refiners.base import Refiner, iterate
from .rng import SampleNoise
from .target import FiniteGuard, Target, check_gradient_flows


@dataclass
class Refined:
    """The loop's output on the CPU: final latents, samples and logits, and the kept states
    (``[kept steps, N, ...]``; ``z_history`` in latent space only, ``x_history`` with ``keep_samples``)."""

    z: Tensor
    x: Tensor
    logits: Tensor
    steps: list[int]
    z_history: Tensor | None
    x_history: Tensor | None
    logit_history: Tensor
    acceptance_rate: float | None  # mean fraction of moves taken (methods whose steps report ``accepted``)


def kept_steps(steps: int, save_interval: int | None) -> list[int]:
    """Every ``save_interval``-th step from 0, and the last (only the last with ``None``)."""
    if save_interval is None:
        return [steps]
    return sorted(set(range(0, steps + 1, save_interval)) | {steps})


def run(method: Refiner, target: Target, z: Tensor, *, seed: int, sample_ids: Tensor, kept: list[int],
        device: torch.device, labels: Tensor | None = None, generator: Target | None = None,
        batch_size: int = 500, keep_samples: bool = True,
        callback: Callable[[dict[str, Any]], None] | None = None, progress: bool = True,
        desc: str = "refine") -> Refined:
    """Run ``method`` from the latents ``z`` (on the CPU) in batches of ``batch_size``.

    Sample ``i`` draws its noise from ``SampleNoise(seed, sample_ids[i])``. ``generator``: in data
    space, the latent target that maps ``z`` to the starting samples. ``callback`` receives
    ``{"step", "state", "info", "sample_ids", "target"}`` after every step.
    """
    keep = set(kept)
    outs: dict[str, list[Tensor]] = {"z": [], "x": [], "logit": [], "z_hist": [], "x_hist": [], "d_hist": []}
    accepted: list[Tensor] = []
    with progress_bar(total=len(z) * method.steps, desc=desc, disable=None if progress else True,
                      leave=False) as bar:
        for index in torch.arange(len(z)).split(batch_size):
            batch_labels = None if labels is None else labels[index].to(device)
            noise = SampleNoise(seed, sample_ids[index], device)
            start = z[index].to(device)
            if generator is not None:
                with torch.no_grad():
                    start = generator.bind(batch_labels).sample(start)
            t = target.bind(batch_labels)
            t.guard = FiniteGuard() if device.type != "cpu" else None  # no host sync per step on accelerators
            state = method.init(t, start)
            if index[0] == 0 and method.steps:  # step 0 of the first batch: a detached discriminator gives no drift
                check_gradient_flows(method.logit_grad(t, state), state.z)
            hist = [_snapshot(state, keep_samples, t.guard)] if 0 in keep else []
            moves, reports_moves = torch.zeros(len(index), device=device), False
            for n, state, info in iterate(method, t, state, noise):
                if info.accepted is not None:
                    moves, reports_moves = moves + info.accepted, True
                if callback is not None:
                    callback({"step": n + 1, "state": state, "info": info, "sample_ids": sample_ids[index],
                              "target": t})
                if n + 1 in keep:
                    hist.append(_snapshot(state, keep_samples, t.guard))
                bar.update(len(index))
            if t.guard is not None:
                t.guard.check()
            outs["z"].append(state.z.cpu() if t.space == "latent" else z[index])
            outs["x"].append(state.x.cpu())
            outs["logit"].append(state.logit.cpu())
            outs["z_hist"].append(torch.stack([h[0] for h in hist]))
            if keep_samples:
                outs["x_hist"].append(torch.stack([h[1] for h in hist]))
            outs["d_hist"].append(torch.stack([h[2] for h in hist]))
            if reports_moves:
                accepted.append(moves.cpu())
    return Refined(
        z=torch.cat(outs["z"]), x=torch.cat(outs["x"]), logits=torch.cat(outs["logit"]), steps=kept,
        z_history=torch.cat(outs["z_hist"], 1) if target.space == "latent" else None,
        x_history=torch.cat(outs["x_hist"], 1) if keep_samples else None,
        logit_history=torch.cat(outs["d_hist"], 1),
        acceptance_rate=float(torch.cat(accepted).mean()) / method.steps if accepted and method.steps else None)


def _snapshot(state: Any, keep_samples: bool, guard: FiniteGuard | None) -> tuple[Tensor, Tensor | None, Tensor]:
    if guard is not None:  # a save point synchronises anyway: raise here for what was non-finite so far
        guard.check()
    return state.z.cpu(), state.x.cpu() if keep_samples else None, state.logit.cpu()
