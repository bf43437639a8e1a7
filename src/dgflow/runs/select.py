"""``dgflow refine --config`` with ``method: drs`` or ``mhgan``: a selection run, computed at once.

The job: one :func:`dgflow.select` call over all ``num_imgs`` samples into ``batches/selection.pt``.
Independent chains (MH-GAN, DRS with ``gamma_per_chain``) are split over the ``torchrun`` ranks
(``select(..., shard=True)``); DRS's default rule is sequential in its proposals (its running maximum),
so rank 0 selects alone. The outputs are those of a refinement with one step, 0 (:mod:`.generator`).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from ..api import select
from .engine import AtOnce, Batches
from .generator import GeneratorRun
from .measure import real_samples


class SelectJob(GeneratorRun):
    """Select the run's samples in one go (``batches/selection.pt``)."""

    def plan(self, run_dir: Path, progress: bool) -> Iterator[Batches | AtOnce]:
        cfg = self.cfg
        critic, labels, common = self.setup()
        options = cfg.method_options()
        chains = cfg.method == "mhgan" or bool(options.get("gamma_per_chain"))  # independent chains: every rank

        def compute() -> tuple[dict[str, Any], dict[str, Any]]:
            real = real_samples(cfg, cfg.real_samples) if cfg.method == "mhgan" else None
            res = select(self.generator, critic, cfg.num_imgs, method=cfg.method, labels=labels, real=real,
                         shard=chains, **{k: v for k, v in common.items() if k != "progress"}, progress=progress,
                         **options)
            return ({"ids": torch.arange(cfg.num_imgs), "steps": [0], "z": res.z[None], "x": res.x[None],
                     "logits": res.logits[None]}, {"acceptance_rate": res.acceptance_rate, **res.info})

        yield AtOnce(run_dir / "batches" / "selection.pt", compute, together=chains, timed=True)
