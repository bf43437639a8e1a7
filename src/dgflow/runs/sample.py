"""``dgflow sample --config``: a resumable EDM / Discriminator Guidance run with its outputs on disk.

The keys are the DG authors' ``generate.py`` options where they exist (``dg_weight_1st_order``,
``dg_weight_2nd_order``, ``time_min``, ``time_max`` in VP time, ``boosting``, ``num_samples``,
``steps``, ``sigma_min``, ``sigma_max``, ``rho``, ``S_churn``, ``S_min``, ``S_max``, ``S_noise``),
``dg_clip`` (the authors' clipping of ``d`` to ``[1e-5, 1 - 1e-5]``; ``null`` for none), plus the models
(``denoiser_*``, ``disc_*``, as in ``dgflow refine``'s ``gen_*``) and metrics (:class:`dgflow.config.SampleConfig`).

Layout of ``exp_root/<name>/`` (besides the store's ``config.yml``, ``fingerprint.txt``,
``checkpoints.json``; :mod:`.store`)::

    batches/<variant>/ids_<a>-<b>.pt         finished batches (the unit of resumption; tensors only)
    samples/<variant>.npz                    ``x`` (uint8 NHWC for images), ``ids``, ``labels``
    grid_<variant>.png                       image grid or 2-D scatter
    metrics.json, metrics.png                the dataset metrics of every variant
    tensorboard/                             the same metrics and the grids as TensorBoard events

``<variant>`` is ``guided`` and, with ``baseline: true`` (default), ``unguided``: the same
sampler, latents and churn noise without the discriminator, so the two differ only by DG.
The job: per variant, the samples cut into batches of ``batch_size`` ids, each drawn by
:func:`dgflow.guide` into one batch file (:mod:`.engine`).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import io
from ..config import SampleConfig
from ..zoo.loading import load_model
from ..diffusion import from_epsilon_vp, guide
from ..plots import metric_note, plot_variants, save_grid
from ..tensorboard_log import write_run_events
from .engine import AtOnce, Batches, Job, execute
from .measure import Measure, make_metrics, plot_real
from .store import Fingerprint, Merged, sample_array

FINGERPRINT = Fingerprint(
    ignored=frozenset({"exp_root", "name", "device", "batch_size", "data_root", "fid_ref", "classifier_path",
                       "baseline", "dataset", "trust_checkpoint"}),
    checkpoints=("denoiser_path", "disc_path"),
)


def run_sample(cfg: SampleConfig, config_path: str | Path | None = None, progress: bool = True,
               overwrite: bool = False, wait: bool = False) -> Path:
    """Run (or resume) the sampling ``cfg`` describes; returns the run folder.

    ``overwrite`` / ``wait`` as for :func:`dgflow.runs.refine.run_refine`. Under ``torchrun`` each rank
    samples its share of the batches (:mod:`dgflow.distributed`); rank 0 locks and claims the folder and merges.
    """
    return execute(cfg, config_path, SampleJob.load, progress=progress, overwrite=overwrite, wait=wait)


def load_denoiser(cfg: SampleConfig, device: torch.device) -> nn.Module:
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


def sample_shape(cfg: SampleConfig, denoiser: nn.Module) -> tuple[int, ...]:
    """The shape of one sample: the config's ``shape``, else what the denoiser records."""
    if cfg.shape is not None:
        return tuple(int(s) for s in cfg.shape)
    if hasattr(denoiser, "dim"):
        return (int(denoiser.dim),)
    if hasattr(denoiser, "channels") and hasattr(denoiser, "image_size"):
        return (int(denoiser.channels), int(denoiser.image_size), int(denoiser.image_size))
    raise ValueError("set shape in the config (one sample's shape, e.g. [1, 28, 28]): the denoiser does not say")


@dataclass
class SampleJob(Job):
    """Draw every variant's samples batch by batch (``batches/<variant>/ids_<a>-<b>.pt``)."""

    cfg: SampleConfig
    denoiser: nn.Module
    discriminator: nn.Module | None  # None for an unguided run
    device: torch.device

    fingerprint: ClassVar[Fingerprint] = FINGERPRINT

    @classmethod
    def load(cls, cfg: SampleConfig, device: torch.device) -> SampleJob:
        """Build and load the denoiser and, for a guided run, the time-dependent discriminator on ``device``."""
        denoiser = load_denoiser(cfg, device)
        guided = cfg.dg_weight_1st_order != 0 or cfg.dg_weight_2nd_order != 0
        disc = (load_model("discriminator", cfg.disc_type, cfg.disc_path, cfg.disc_kwargs, cfg.disc_role, device,
                           trust=cfg.trust_checkpoint) if guided else None)
        return cls(cfg, denoiser, disc, device)

    def variants(self) -> dict[str, nn.Module | None]:
        """``{variant: its discriminator}``: ``guided`` (with guidance), then ``unguided`` (the baseline)."""
        variants: dict[str, nn.Module | None] = {} if self.discriminator is None else {"guided": self.discriminator}
        if self.cfg.baseline or self.discriminator is None:
            variants["unguided"] = None
        return variants

    def measure(self) -> Measure:
        return make_metrics(self.cfg) if self.cfg.dataset else (lambda x: {})

    def plan(self, run_dir: Path, progress: bool) -> Iterator[Batches | AtOnce]:
        cfg = self.cfg
        shape = sample_shape(cfg, self.denoiser)
        labels = None if cfg.num_classes is None else torch.arange(cfg.num_samples) % cfg.num_classes
        settings = {"steps": cfg.steps, "sigma_min": cfg.sigma_min, "sigma_max": cfg.sigma_max, "rho": cfg.rho,
                    "S_churn": cfg.S_churn, "S_min": cfg.S_min, "S_max": cfg.S_max, "S_noise": cfg.S_noise,
                    "w_euler": cfg.dg_weight_1st_order, "w_heun": cfg.dg_weight_2nd_order,
                    "sigma_range": cfg.sigma_range(), "boosting": cfg.boosting, "clip": cfg.dg_clip}
        for variant, discriminator in self.variants().items():
            options = settings if discriminator is not None else {**settings, "boosting": False}

            def compute(ids: torch.Tensor, discriminator: nn.Module | None = discriminator,
                        options: dict[str, Any] = options) -> tuple[dict[str, Any], None]:
                res = guide(self.denoiser, discriminator, len(ids), shape=shape, sample_ids=ids, seed=cfg.seed,
                            labels=None if labels is None else labels[ids], batch_size=cfg.batch_size,
                            device=self.device, progress=False, **options)
                return {"x": res.x, "labels": res.labels}, None

            yield Batches(run_dir / "batches" / variant, cfg.num_samples, cfg.batch_size, compute, label=variant)

    def finish(self, run_dir: Path, measure: Measure, progress: bool) -> dict[str, Any]:
        return finish_sample(run_dir, self.cfg, list(self.variants()), measure, progress)


def finish_sample(run_dir: Path, cfg: SampleConfig, variants: list[str], measure: Measure,
                  progress: bool = True) -> dict[str, Any]:
    """Merge each variant's batches into ``samples/<variant>.npz``, a grid, and the metrics."""
    metrics: dict[str, Any] = {"num_samples": cfg.num_samples, "variants": {}}
    real = plot_real(cfg)
    for variant in variants:
        merged = Merged(run_dir / "batches" / variant, cfg.num_samples)
        if not merged:
            raise RuntimeError(f"{run_dir} has no finished {variant} batches to merge")
        x = merged.cat("x")
        arrays = {"x": sample_array(x), "ids": merged.ids.numpy()}
        if merged.has("labels"):
            arrays["labels"] = merged.cat("labels").numpy()
        io.write_npz(run_dir / "samples" / f"{variant}.npz", arrays)
        metrics["variants"][variant] = measure(x)
        save_grid(x, run_dir / f"grid_{variant}.png", title=f"{run_dir.name}: {variant}", real=real,
                  note=metric_note(metrics["variants"][variant]))
    io.write_json(run_dir / "metrics.json", metrics)
    plot_variants(metrics["variants"], run_dir / "metrics.png")
    write_run_events(run_dir, metrics)  # tensorboard/: the metrics and grids, for `tensorboard --logdir`
    return metrics
