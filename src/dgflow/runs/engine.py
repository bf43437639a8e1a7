"""The generic resumable runner: one run folder, its pending work split over ``torchrun`` ranks, one merge.

:func:`execute` runs a :class:`Job` (``dgflow refine --config``: :mod:`.refine`, :mod:`.select`;
``dgflow sample --config``: :mod:`.sample`), in the shape of EDM's ``generate.py``:

1. join the ``torchrun`` process group (a no-op for one process); rank 0 locks the run folder;
2. every rank starts the job (loads its models): a start that fails leaves the folder as it was;
3. rank 0 claims the folder (:func:`.store.claim`: the fingerprint) and builds the metrics, so that a
   missing reference or classifier fails before any work;
4. for each unit of work the job plans: :class:`Batches` -- rank 0 lists the sample ids no batch file
   holds yet, cut into batches of ``batch_size``; rank ``r`` computes the batches ``k`` with
   ``k % world_size == r`` and saves each as one file; :class:`AtOnce` -- one file computed at once, by
   every rank together or by rank 0 alone;
5. rank 0 merges the files into the run's outputs (``job.finish``); the other ranks exit.

A batch file is the unit of work: an interrupted run restarts with the pending ids, and because every
sample has its own random stream (:mod:`dgflow.rng`) the merged result equals an uninterrupted
run's, whatever the number of ranks or the batch size of either.
"""

from __future__ import annotations

import contextlib
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from .. import distributed, io
from ..config import check_device
from ..progress import progress_bar as tqdm
from .measure import Measure
from .store import Fingerprint, batch_name, claim, pending, record_seconds, run_folder, save_batch

Computed = tuple[dict[str, Any], dict[str, Any] | None]  # (the tensors of a batch file, its JSON info)


@dataclass(frozen=True)
class Batches:
    """Work cut into batch files ``folder/ids_<a>-<b>.pt`` over the sample ids ``[0, count)``:
    ``compute(ids)`` gives one file's tensors and info. ``label`` names the progress bar; ``timed``
    records each batch's wall time in ``timing/``."""

    folder: Path
    count: int
    batch_size: int
    compute: Callable[[torch.Tensor], Computed]
    label: str
    timed: bool = False


@dataclass(frozen=True)
class AtOnce:
    """Work done at once into one file ``path`` (unless it exists): by every rank ``together`` (each
    computes its share inside ``compute``), else by rank 0 alone; rank 0 saves it."""

    path: Path
    compute: Callable[[], Computed]
    together: bool
    timed: bool = False


class Job(Protocol):
    """A resumable job: what decides its results, the metrics it reports, its work, and its merge."""

    fingerprint: Fingerprint

    def measure(self) -> Measure:
        """The metrics of a merged sample (built on rank 0 before any work)."""

    def plan(self, run_dir: Path, progress: bool) -> Iterator[Batches | AtOnce]:
        """The units of work, in order (every rank iterates them; collectives between yields are allowed)."""

    def finish(self, run_dir: Path, measure: Measure, progress: bool) -> dict[str, Any]:
        """Merge the batch files into the outputs (rank 0)."""


def execute(cfg: Any, config_path: str | Path | None, start: Callable[[Any, torch.device], Job],
            progress: bool = True, overwrite: bool = False, wait: bool = False) -> Path:
    """Run (or resume) the job ``start(cfg, device)`` builds in ``cfg``'s run folder; returns the folder.

    ``overwrite``: discard whatever the folder holds and start afresh. ``wait``: if another run holds the
    folder, wait for it instead of failing.
    """
    check_device(cfg.device)
    ctx = distributed.init(cfg.device)
    try:
        run_dir = run_folder(cfg, config_path)
        with contextlib.ExitStack() as held:
            distributed.on_main(lambda: held.enter_context(io.run_lock(run_dir, wait)), share=False)
            progress = progress and ctx.is_main
            job = start(cfg, ctx.device)
            distributed.on_main(lambda: claim(run_dir, cfg, overwrite, job.fingerprint))
            measure = distributed.on_main(job.measure, share=False)
            for work in job.plan(run_dir, progress):
                if isinstance(work, Batches):
                    run_batches(work, ctx, run_dir, progress)
                else:
                    run_at_once(work, ctx, run_dir)
            if ctx.is_main:  # the other ranks are done: they exit instead of waiting (and timing out) for the merge
                job.finish(run_dir, measure, progress)
            return run_dir
    finally:
        distributed.finalize(ctx)


def run_batches(work: Batches, ctx: distributed.Context, run_dir: Path, progress: bool) -> None:
    """Compute this rank's share of the pending batches of ``work``, one file each; then wait for every rank."""
    todo = distributed.on_main(lambda: pending(work.folder, work.count))  # one listing for every rank
    mine = distributed.shard(list(todo.split(work.batch_size)) if len(todo) else [], ctx.rank, ctx.world_size)
    with tqdm(total=sum(len(ids) for ids in mine), desc=f"{work.label} ({run_dir.name})",
              disable=None if progress else True) as bar:
        for ids in mine:
            began = time.perf_counter()
            tensors, info = work.compute(ids)
            save_batch(work.folder / f"{batch_name(ids)}.pt", {"ids": ids, **tensors}, info)
            if work.timed:
                record_seconds(run_dir, batch_name(ids), began)
            bar.update(len(ids))
    distributed.barrier()  # every batch is on disk before rank 0 merges


def run_at_once(work: AtOnce, ctx: distributed.Context, run_dir: Path) -> None:
    """Compute ``work`` unless its file exists: on every rank when ``together``, else on rank 0; rank 0 saves."""
    def missing() -> bool:
        return not work.path.exists()

    if not (bool(distributed.on_main(missing)) if work.together else ctx.is_main and missing()):
        return
    began = time.perf_counter()
    tensors, info = work.compute()
    if ctx.is_main:
        save_batch(work.path, tensors, info)
        if work.timed:
            record_seconds(run_dir, work.path.stem, began)
