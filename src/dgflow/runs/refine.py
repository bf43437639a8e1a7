"""``dgflow refine --config``: a resumable refinement run (DGflow, DDLS, DOT) with its outputs on disk.

The job: the run's samples cut into batches of ``batch_size`` sample ids, each refined by
:func:`dgflow.refine` into one batch file (every sample has its own random stream, so the merge does not
depend on the batch size, the ranks or an interruption). Options every batch must share are decided once,
on rank 0, before the batches: "auto" step sizes / steps (:func:`tune_once`, kept in ``auto.json``) and
DOT's ``k_eff`` (:func:`shared_statistics`). The folder's layout: :mod:`.generator`.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import torch

from .. import distributed, io
from ..api import autotune, refine
from ..config import RunConfig
from ..refiners import REFINERS
from ..refiners.base import is_auto
from ..plots import plot_pilot
from .engine import AtOnce, Batches, execute
from .generator import GeneratorRun
from .measure import real_samples
from .select import SelectJob


def run_refine(cfg: RunConfig, config_path: str | Path | None = None, progress: bool = True,
               overwrite: bool = False, wait: bool = False) -> Path:
    """Run (or resume) the refinement or selection ``cfg`` describes; returns the run folder.

    ``overwrite``: discard whatever the folder holds and start afresh. ``wait``: if another run holds the
    folder, wait for it instead of failing. Under ``torchrun`` every rank refines its share of the
    batches (:mod:`dgflow.distributed`); rank 0 alone locks and claims the folder, computes the shared
    statistics and writes the merged outputs.
    """
    job = RefineJob if cfg.method in REFINERS else SelectJob
    return execute(cfg, config_path, job.load, progress=progress, overwrite=overwrite, wait=wait)


class RefineJob(GeneratorRun):
    """Refine the run's samples batch by batch (``batches/ids_<a>-<b>.pt``)."""

    def plan(self, run_dir: Path, progress: bool) -> Iterator[Batches | AtOnce]:
        cfg = self.cfg
        critic, labels, common = self.setup()
        options = cfg.method_options()
        if any(is_auto(v) for v in options.values()):  # choose once (rank 0), then every batch uses the same values
            options = distributed.on_main(
                lambda: tune_once(run_dir, cfg, self.generator, critic, labels, common, options, progress))
        options = {**options, **distributed.on_main(
            lambda: shared_statistics(cfg, self.generator, critic, common, options))}

        def compute(ids: torch.Tensor) -> tuple[dict[str, Any], dict[str, Any]]:
            res = refine(self.generator, critic, n=len(ids), sample_ids=ids, method=cfg.method, space=cfg.space,
                         labels=None if labels is None else labels[ids], save_interval=cfg.save_interval,
                         keep_samples=True, speed=cfg.speed_options(), **common, **options)
            return {"steps": res.steps, "z": res.z_history, "x": res.x_history, "logits": res.logit_history}, res.info

        yield Batches(run_dir / "batches", cfg.num_imgs, cfg.batch_size, compute, label=cfg.method, timed=True)


def shared_statistics(cfg: RunConfig, generator: Any, critic: Any, common: dict[str, Any],
                      options: dict[str, Any]) -> dict[str, Any]:
    """Options every batch shares, computed once for the whole run: DOT's ``k_eff`` (unless the config
    sets it), from the run's seed and, for a conditional run, all its classes. Passing it to each batch
    keeps batches (and ranks) from estimating their own."""
    if cfg.method != "dot" or options.get("k_eff") is not None:
        return {}
    classes = None if cfg.num_classes is None else torch.arange(cfg.num_classes)
    res = refine(generator, critic, n=1 if classes is None else len(classes), method="dot", space=cfg.space,
                 labels=classes, save_interval=None, keep_samples=False, **common,
                 **{**options, "steps": 0})
    return {"k_eff": res.info["k_eff"]}


def tune_once(run_dir: Path, cfg: RunConfig, generator: Any, critic: Any, labels: torch.Tensor | None,
              common: dict[str, Any], options: dict[str, Any], progress: bool) -> dict[str, Any]:
    """Resolve "auto" options with one pilot (:func:`dgflow.autotune`); kept in ``auto.json`` for resumes."""
    path = run_dir / "auto.json"
    if path.exists():
        return json.loads(path.read_text())["options"]
    heldout = real_samples(cfg, cfg.heldout_real, seed_offset=40_000) if cfg.heldout_real else None
    classes = None if labels is None else torch.arange(cfg.num_classes)
    chosen, evidence = autotune(generator, critic, cfg.method, labels=classes, heldout=heldout, **common, **options)
    io.write_json(path, {"options": chosen, "auto": evidence})
    plot_pilot(evidence, run_dir / "auto.png")
    if progress:
        print(f"{run_dir.name}: auto: {evidence['reason']}", flush=True)
    return chosen
