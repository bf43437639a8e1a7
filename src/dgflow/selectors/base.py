"""The selector interface: methods that keep or reject generator samples instead of moving them.

A selector draws proposals through :class:`Proposals`, which gives proposal ``i`` of
stream ``s`` at step ``k`` the same latent whatever the batching, and returns a
:class:`SelectResult`.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from typing import Any, ClassVar

import torch
import torch.distributed as dist
from torch import Tensor

from .. import distributed
from ..progress import progress_bar as tqdm
from ..rng import SampleNoise
from ..target import Target


@dataclass
class SelectResult:
    """``n`` selected samples with their latents, logits and acceptance statistics."""

    x: Tensor
    z: Tensor
    logits: Tensor
    acceptance_rate: float
    n_proposals: int
    method: str
    options: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    labels: Tensor | None = None


class Proposals:
    """Seeded generator proposals, evaluated in batches of at most ``batch_size``."""

    def __init__(self, target: Target, seed: int, batch_size: int, device: torch.device,
                 real: Tensor | None = None, stream_prefix: str = "", shard: bool = False):
        self.target = target
        self.seed = seed
        self.batch_size = batch_size
        self.device = device
        self.real = real
        self.stream_prefix = stream_prefix
        self.shard = shard  # split chain proposals over the torch.distributed ranks (each must call select)
        self.ranks = 1  # how many processes evaluated the last chain_logits

    def latents(self, ids: Tensor, stream: str, step: int = 0) -> Tensor:
        """Proposal latents for ``ids`` drawn from the prior with the keyed stream ``stream`` at ``step``."""
        noise = SampleNoise(self.seed, ids, self.device)
        return self.target.prior.draw(noise, step=step, stream=self.stream_prefix + stream)

    @torch.no_grad()
    def draw(self, ids: Tensor, stream: str, step: int = 0) -> tuple[Tensor, Tensor, Tensor]:
        """``(z, x, d(x))`` on the CPU for proposals ``ids`` of ``stream`` at ``step``."""
        zs, xs, ds = [], [], []
        for chunk in torch.as_tensor(ids).split(self.batch_size):
            z = self.latents(chunk, stream, step)
            x = self.target.sample(z)
            zs.append(z.cpu())
            xs.append(x.cpu())
            ds.append(self.logit(x).cpu())
        return torch.cat(zs), torch.cat(xs), torch.cat(ds)

    @torch.no_grad()
    def logit(self, x: Tensor) -> Tensor:
        """``d(x)`` for samples (or real data) in batches, on the CPU."""
        out = [self.target.discriminate(chunk.to(self.device)).cpu() for chunk in x.split(self.batch_size)]
        return torch.cat(out) if out else torch.zeros(0)

    @torch.no_grad()
    def draw_logits(self, ids: Tensor, stream: str, step: int = 0) -> Tensor:
        """Only ``d(g(z))`` for proposals ``ids`` (no samples kept: burn-in and calibration need no more)."""
        return torch.cat([self.target.logit(self.latents(chunk, stream, step)).cpu()
                          for chunk in torch.as_tensor(ids).split(self.batch_size)])

    @torch.no_grad()
    def chain_logits(self, chains: Tensor, steps: int, stream: str, progress: bool = False,
                     desc: str = "proposals") -> Tensor:
        """``d(g(z))`` of proposal ``k`` of chain ``i`` for every chain and ``k < steps``: ``[chains, steps]``.

        Proposal ``k`` of chain ``i`` has the latent ``latents([i], stream, step=k)``. The
        ``chains x steps`` proposals go through the networks in blocks of ``batch_size``
        (several steps of every chain per call when there are fewer chains than that), not
        one call per step. With ``shard`` under ``torch.distributed`` every rank evaluates its
        share of the chains and all ranks receive all logits (every rank must call this).
        """
        chains = torch.as_tensor(chains)
        world = dist.get_world_size() if self.shard and dist.is_available() and dist.is_initialized() else 1
        self.ranks = world
        if world > 1:  # rank r evaluates the chains k with k % world == r (as distributed.shard)
            parts = distributed.gather(self._chain_logits(chains[dist.get_rank()::world], steps, stream,
                                                          progress, desc))
            out = torch.empty(len(chains), steps, dtype=parts[0].dtype)
            for r, part in enumerate(parts):
                out[r::world] = part
            return out
        return self._chain_logits(chains, steps, stream, progress, desc)

    def _chain_logits(self, chains: Tensor, steps: int, stream: str, progress: bool, desc: str) -> Tensor:
        blocks = []
        with tqdm(total=len(chains) * steps, desc=desc, disable=None if progress else True, leave=False) as bar:
            for rows in chains.split(self.batch_size):
                per_call = max(1, self.batch_size // len(rows))  # whole steps of these chains per call
                cols = []
                for first in range(0, steps, per_call):
                    ks = range(first, min(first + per_call, steps))
                    z = torch.cat([self.latents(rows, stream, k) for k in ks])
                    cols.append(self.target.logit(z).cpu().reshape(len(ks), len(rows)).T)
                    bar.update(len(ks) * len(rows))
                blocks.append(torch.cat(cols, 1))
        return torch.cat(blocks) if blocks else torch.zeros(0, steps)

    @torch.no_grad()
    def samples_at(self, ids: Tensor, steps: Tensor, stream: str) -> tuple[Tensor, Tensor]:
        """``(z, g(z))`` on the CPU of proposal ``steps[j]`` of chain ``ids[j]``, for every ``j``."""
        ids, steps = torch.as_tensor(ids), torch.as_tensor(steps)
        where = [torch.nonzero(steps == k).flatten() for k in torch.unique(steps).tolist()]
        parts = [self.latents(ids[at], stream, int(steps[at[0]])).cpu() for at in where]
        z = torch.cat(parts)[torch.argsort(torch.cat(where))]
        x = [self.target.sample(chunk.to(self.device)).cpu() for chunk in z.split(self.batch_size)]
        return z, torch.cat(x)

    def uniform(self, ids: Tensor, stream: str, step: int = 0) -> Tensor:
        """One float64 uniform in [0, 1) per id from the keyed stream ``stream`` at ``step`` (accept/reject tests)."""
        return SampleNoise(self.seed, ids).uniform(step=step, stream=self.stream_prefix + stream, dtype=torch.float64)


@dataclass(frozen=True)
class Selector:
    """Base class of the selection methods (subclasses are frozen dataclasses of their options)."""

    name: ClassVar[str] = "selector"

    def select(self, proposals: Proposals, n: int, progress: bool = True) -> SelectResult:
        """Return ``n`` selected samples from ``proposals``."""
        raise NotImplementedError

    def options(self) -> dict[str, Any]:
        """The selector's settings, as recorded in results and run folders."""
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}
