"""``dgflow sample --config``: a resumable EDM / Discriminator Guidance run with its outputs on disk.

The keys are the DG authors' ``generate.py`` options where they exist (``dg_weight_1st_order``,
``dg_weight_2nd_order``, ``time_min``, ``time_max`` in VP time, ``boosting``, ``num_samples``,
``steps``, ``sigma_min``, ``sigma_max``, ``rho``, ``S_churn``, ``S_min``, ``S_max``, ``S_noise``),
``dg_clip`` (the authors' clipping of ``d`` to ``[1e-5, 1 - 1e-5]``; ``null`` for none), plus the models (``denoiser_*``, ``disc_*``, as in ``dgflow refine``'s ``gen_*``) and metrics.

Layout of ``exp_root/<name>/``::

    config.yml, fingerprint.txt              the resolved configuration
    checkpoints.json                         the sha256 of each checkpoint (part of the fingerprint)
    batches/<variant>/ids_<a>-<b>.pt         finished batches (the unit of resumption; tensors only)
    samples/<variant>.npz                    ``x`` (uint8 NHWC for images), ``ids``, ``labels``
    grid_<variant>.png                       image grid or 2-D scatter
    metrics.json, metrics.png                the dataset metrics of every variant
    tensorboard/                             the same metrics and the grids as TensorBoard events

``<variant>`` is ``guided`` and, with ``baseline: true`` (default), ``unguided``: the same
sampler, latents and churn noise without the discriminator, so the two differ only by DG.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np
import torch
from ..progress import progress_bar as tqdm

from .. import distributed, io
from ..config import SampleConfig, check_device
from ..zoo.loading import load_model
from ..plots import BETTER, metric_note, save_grid, to_uint8
from ..runner import _claim, _pending, _plot_real, checkpoint_hashes, load_batch, make_metrics, run_folder, save_batch
from ..tensorboard_log import write_run_events
from .denoisers import from_epsilon_vp
from .guidance import guide


_NOT_IN_FINGERPRINT = {"exp_root", "name", "device", "batch_size", "data_root", "fid_ref", "classifier_path",
                       "baseline", "dataset", "trust_checkpoint"}
def load_denoiser(cfg: SampleConfig, device: torch.device) -> torch.nn.Module:
    """Build and load the run's denoiser (wrapped as an EDM denoiser when ``adapter`` says so)."""
    model = load_model("denoiser", cfg.denoiser_type, cfg.denoiser_path, cfg.denoiser_kwargs, cfg.denoiser_role,
                       device, prefix="denoiser", trust=cfg.trust_checkpoint)
    if cfg.adapter != "epsilon_vp":
        return model
    kw = dict(cfg.adapter_kwargs)
    alphas_cumprod = None
    if "timesteps" in kw:  # a discrete linear beta schedule (DDPM): beta_start .. beta_end over timesteps
        betas = torch.linspace(float(kw.pop("beta_start", 1e-4)), float(kw.pop("beta_end", 0.02)), int(kw.pop("timesteps")),
                               dtype=torch.float64)
        alphas_cumprod = torch.cumprod(1 - betas, 0)
    return from_epsilon_vp(model, alphas_cumprod, **kw).to(device)


def sample_shape(cfg: SampleConfig, denoiser: torch.nn.Module) -> tuple[int, ...]:
    """The shape of one sample: the config's ``shape``, else what the denoiser records."""
    if cfg.shape is not None:
        return tuple(int(s) for s in cfg.shape)
    if hasattr(denoiser, "dim"):
        return (int(denoiser.dim),)
    if hasattr(denoiser, "channels") and hasattr(denoiser, "image_size"):
        return (int(denoiser.channels), int(denoiser.image_size), int(denoiser.image_size))
    raise ValueError("set shape in the config (one sample's shape, e.g. [1, 28, 28]): the denoiser does not say")


def run_sample(cfg: SampleConfig, config_path: str | Path | None = None, progress: bool = True,
               overwrite: bool = False, wait: bool = False) -> Path:
    """Run (or resume) the sampling ``cfg`` describes; returns the run folder.

    ``overwrite`` / ``wait`` as for :func:`dgflow.runner.run`. Under ``torchrun`` each rank samples
    its share of the batches (:mod:`dgflow.distributed`, as ``dgflow refine``); rank 0 locks and
    claims the folder and merges.
    """
    check_device(cfg.device)
    ctx = distributed.init(cfg.device)
    try:
        run_dir = run_folder(cfg, config_path)
        with contextlib.ExitStack() as held:
            distributed.on_main(lambda: held.enter_context(io.run_lock(run_dir, wait)), share=False)
            return _run_sample(cfg, ctx, run_dir, progress and ctx.is_main, overwrite)
    finally:
        distributed.finalize(ctx)


def _run_sample(cfg: SampleConfig, ctx: distributed.Context, run_dir: Path, progress: bool,
                overwrite: bool) -> Path:
    device = ctx.device
    denoiser = load_denoiser(cfg, device)
    guided = cfg.dg_weight_1st_order != 0 or cfg.dg_weight_2nd_order != 0
    disc = (load_model("discriminator", cfg.disc_type, cfg.disc_path, cfg.disc_kwargs, cfg.disc_role, device,
                       trust=cfg.trust_checkpoint) if guided else None)
    # claim the folder once the models load; fail fast on a missing classifier or reference (rank 0 measures)
    distributed.on_main(lambda: _claim(run_dir, cfg, overwrite, _NOT_IN_FINGERPRINT,
                                       checkpoint_hashes(cfg, ("denoiser_path", "disc_path"))))
    measure = distributed.on_main(lambda: make_metrics(cfg) if cfg.dataset else (lambda x: {}), share=False)
    shape = sample_shape(cfg, denoiser)
    labels = None if cfg.num_classes is None else torch.arange(cfg.num_samples) % cfg.num_classes
    variants = {"guided": disc} if guided else {}
    if cfg.baseline or not guided:
        variants["unguided"] = None
    settings = dict(steps=cfg.steps, sigma_min=cfg.sigma_min, sigma_max=cfg.sigma_max, rho=cfg.rho, S_churn=cfg.S_churn,
                    S_min=cfg.S_min, S_max=cfg.S_max, S_noise=cfg.S_noise, w_euler=cfg.dg_weight_1st_order,
                    w_heun=cfg.dg_weight_2nd_order, sigma_range=cfg.sigma_range(), boosting=cfg.boosting,
                    clip=cfg.dg_clip)
    for variant, discriminator in variants.items():
        batch_dir = run_dir / "batches" / variant
        todo = distributed.on_main(lambda: _pending(batch_dir, cfg.num_samples))  # one listing for every rank
        mine = distributed.shard(list(todo.split(cfg.batch_size)) if len(todo) else [], ctx.rank, ctx.world_size)
        opts = settings if discriminator is not None else {**settings, "boosting": False}
        with tqdm(total=sum(len(ids) for ids in mine), desc=f"{variant} ({run_dir.name})",
                  disable=None if progress else True) as bar:
            for ids in mine:
                res = guide(denoiser, discriminator, len(ids), shape=shape, sample_ids=ids, seed=cfg.seed,
                            labels=None if labels is None else labels[ids], batch_size=cfg.batch_size, device=device,
                            progress=False, **opts)
                save_batch(batch_dir / f"ids_{int(ids[0]):08d}-{int(ids[-1]) + 1:08d}.pt",
                           {"ids": ids, "x": res.x, "labels": res.labels})
                bar.update(len(ids))
        distributed.barrier()  # every batch is on disk before rank 0 merges
    if ctx.is_main:
        finish_sample(run_dir, cfg, list(variants), measure, progress)
    return run_dir


def finish_sample(run_dir: Path, cfg: SampleConfig, variants: list[str], measure, progress: bool = True) -> dict:
    """Merge each variant's batches into ``samples/<variant>.npz``, a grid, and the metrics."""
    metrics: dict[str, Any] = {"num_samples": cfg.num_samples, "variants": {}}
    for variant in variants:
        parts = [load_batch(f) for f in sorted((run_dir / "batches" / variant).glob("ids_*.pt"))]
        parts = [p for p in parts if len(p["ids"]) and int(p["ids"][0]) < cfg.num_samples]
        if not parts:
            raise RuntimeError(f"{run_dir} has no finished {variant} batches to merge")
        ids = torch.cat([p["ids"] for p in parts])
        order = torch.argsort(ids)
        x = torch.cat([p["x"] for p in parts])[order]
        arrays = {"x": to_uint8(x) if x.ndim == 4 else x.numpy(), "ids": ids[order].numpy()}
        if parts[0]["labels"] is not None:
            arrays["labels"] = torch.cat([p["labels"] for p in parts])[order].numpy()

        def write(tmp: str, arrays: dict[str, np.ndarray] = arrays) -> None:
            with open(tmp, "wb") as fh:
                np.savez(fh, **arrays)

        io.write_with(run_dir / "samples" / f"{variant}.npz", write)
        metrics["variants"][variant] = measure(x)
        save_grid(x, run_dir / f"grid_{variant}.png", title=f"{run_dir.name}: {variant}", real=_plot_real(cfg),
                  note=metric_note(metrics["variants"][variant]))
    io.write_json(run_dir / "metrics.json", metrics)
    plot_variants(metrics["variants"], run_dir / "metrics.png")
    write_run_events(run_dir, metrics)  # tensorboard/: the metrics and grids, for `tensorboard --logdir`
    return metrics


def plot_variants(values: dict[str, dict[str, float]], path: Path) -> None:
    """One bar chart per metric, a bar per variant."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({k for v in values.values() for k in v})
    fig, axes = plt.subplots(1, max(1, len(names)), figsize=(3 * max(1, len(names)), 3), squeeze=False)
    for ax, name in zip(axes[0], names):
        variants = [v for v in values if name in values[v]]
        ax.bar(variants, [values[v][name] for v in variants], color=["C1" if v == "guided" else "C0" for v in variants])
        for i, v in enumerate(variants):
            ax.annotate(f"{values[v][name]:.3g}", (i, values[v][name]), ha="center", fontsize=7,
                        va="bottom" if values[v][name] >= 0 else "top")
        ax.set_title(name + (f" ({BETTER[name]} is better)" if name in BETTER else ""), fontsize=9)
    fig.tight_layout()
    io.save_figure(fig, path, dpi=100)
    plt.close(fig)


