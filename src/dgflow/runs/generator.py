"""What every ``dgflow refine --config`` run shares, whichever the method: its models, the critic each batch
sees, and its outputs (:func:`finish`).

Layout of ``exp_root/<name>/`` (besides the store's ``config.yml``, ``fingerprint.txt``,
``checkpoints.json``, ``batches/``, ``timing/``; :mod:`.store`)::

    batches/ids_<a>-<b>.pt  finished refinement batches (latents, logits and samples at every kept step)
    batches/selection.pt    a selection's samples (DRS, MH-GAN: computed at once)
    samples/step_<k>.npz    the merged samples after k steps (``x``, ``z``, ``logits``, ``ids``[, ``labels``])
    metrics.json            mean logit and dataset metrics per kept step
    metrics.png             the same, as curves (with the held-out real level of an "auto" run)
    auto.json, auto.png     "auto" step size / steps: the choice, why, and the pilot's mean logit vs steps
    grid_step_<k>.png       an image grid (images) or scatter plot (2-D points) per kept step
    sentences_step_<k>.txt  the decoded sentences per kept step (``dataset: text``)
    refinement.gif          the grids over the steps
    tensorboard/            the metrics, grids and "auto" pilot curves as TensorBoard events
    timing.json             the method's wall time summed over the batches
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

import torch
from torch import nn

from .. import distributed, io
from ..api import normalize
from ..config import RunConfig
from ..zoo.loading import load_model
from ..plots import metric_note, plot_metrics, save_animation, save_grid
from ..ratio import DensityRatio
from ..tensorboard_log import write_run_events
from ..zoo import latent_shape as zoo_latent_shape
from .engine import Job
from .measure import Measure, make_metrics, plot_real, text_vocabulary
from .store import Fingerprint, Merged, sample_array, total_seconds

FINGERPRINT = Fingerprint(
    # keys that do not change the samples: a run may resume with different values
    ignored=frozenset({"exp_root", "name", "device", "batch_size", "keep_samples", "real_samples", "data_root",
                       "fid_ref", "classifier_path", "inception_weights", "max_batch_size", "memory_budget_gib",
                       "trust_checkpoint"}),
    checkpoints=("gen_path", "disc_path", "corr_path"),
    # speed options that change the numbers (within a tolerance): in the fingerprint only when set, so
    # runs made before they existed keep their fingerprint
    only_when_set={"autocast": None, "compile": False, "channels_last": False, "heldout_real": 0},
)


@dataclass
class GeneratorRun(Job):
    """The models of a refine/select run (loaded on every rank), its metrics and its merge."""

    cfg: RunConfig
    generator: nn.Module
    discriminator: nn.Module
    corrector: nn.Module | None
    device: torch.device

    fingerprint: ClassVar[Fingerprint] = FINGERPRINT

    @classmethod
    def load(cls, cfg: RunConfig, device: torch.device) -> GeneratorRun:
        """Build and load the generator, the discriminator and (with ``corr_path``) the corrector on ``device``."""
        trust = cfg.trust_checkpoint
        generator = load_model("generator", cfg.gen_type, cfg.gen_path, cfg.gen_kwargs, cfg.gen_role, device,
                               trust=trust)
        discriminator = load_model("discriminator", cfg.disc_type, cfg.disc_path, cfg.disc_kwargs, cfg.disc_role,
                                   device, trust=trust)
        corrector = (load_model("corrector", cfg.corr_type, cfg.corr_path, cfg.corr_kwargs, cfg.corr_role, device,
                                trust=trust) if cfg.corr_path else None)
        return cls(cfg, generator, discriminator, corrector, device)

    def measure(self) -> Measure:
        return make_metrics(self.cfg)

    def setup(self) -> tuple[Any, torch.Tensor | None, dict[str, Any]]:
        """``(critic, labels, common)``: the critic every batch uses (self-normalised once, on rank 0, with
        ``normalize_critic``), sample ``i``'s class ``i % num_classes``, and the keyword arguments every
        ``refine`` / ``select`` call shares."""
        cfg = self.cfg
        if cfg.z_dim is not None:
            latent_shape = tuple(cfg.z_dim) if isinstance(cfg.z_dim, (list, tuple)) else (int(cfg.z_dim),)
        else:
            latent_shape = zoo_latent_shape(self.generator)
        labels = None if cfg.num_classes is None else torch.arange(cfg.num_imgs) % cfg.num_classes
        critic: Any = self.discriminator
        corrector = self.corrector
        if cfg.normalize_critic:  # fix an additive constant of the logit: E_pg[exp d] = 1 (once, on rank 0)
            lab = None if labels is None else torch.arange(10_000) % cfg.num_classes
            offset = distributed.on_main(lambda: normalize(
                self.generator, self.discriminator, 10_000, latent_shape=latent_shape, prior=cfg.prior, labels=lab,
                corrector=corrector, batch_size=cfg.batch_size, device=self.device, seed=cfg.seed + 1_000_003).offset)
            critic = DensityRatio(self.discriminator, corrector, offset=offset)
            corrector = None
        common = {"latent_shape": latent_shape, "prior": cfg.prior, "corrector": corrector, "batch_size": cfg.batch_size,
                  "device": self.device, "seed": cfg.seed, "progress": False}
        return critic, labels, common

    def finish(self, run_dir: Path, measure: Measure, progress: bool) -> dict[str, Any]:
        return finish(run_dir, self.cfg, progress, measure)


def finish(run_dir: Path, cfg: RunConfig, progress: bool = True, measure: Measure | None = None) -> dict[str, Any]:
    """Merge the batch files into per-step samples, metrics, grids and the animation."""
    merged = Merged(run_dir / "batches", cfg.num_imgs)
    if not merged:
        raise RuntimeError(f"{run_dir} has no finished batches to merge")
    steps = merged.parts[0]["steps"]
    metrics: dict[str, Any] = {"steps": steps, "mean_logit": [], "dataset": {}}
    total_seconds(run_dir)  # the method's wall time summed over batches (and ranks), apart from metrics.json
    measure = measure or make_metrics(cfg)
    vocabulary = text_vocabulary(cfg)[0] if cfg.dataset == "text" else None
    real = plot_real(cfg)
    frames = []
    for k, step in enumerate(steps):
        x = merged.cat("x", k)
        z = merged.cat("z", k) if merged.has("z") else None
        logits = merged.cat("logits", k)
        metrics["mean_logit"].append(float(logits.mean()))
        if cfg.keep_samples or k == len(steps) - 1:
            arrays = {"x": sample_array(x), "logits": logits.numpy(), "ids": merged.ids.numpy()}
            if cfg.num_classes is not None:  # conditional runs: sample i has class i % num_classes (as EDM saves)
                arrays["labels"] = (merged.ids % cfg.num_classes).numpy()
            if z is not None:
                arrays["z"] = z.numpy()
            io.write_npz(run_dir / "samples" / f"step_{step:04d}.npz", arrays)
        for name, value in measure(x).items():
            metrics["dataset"].setdefault(name, []).append(value)
        if vocabulary is not None:  # sentences instead of a picture
            io.write_text(run_dir / f"sentences_step_{step:04d}.txt", "\n".join(vocabulary.decode(x)) + "\n")
        else:
            frames.append(run_dir / f"grid_step_{step:04d}.png")
            save_grid(x, frames[-1], title=f"{run_dir.name}: step {step}", real=real,
                      note=metric_note({k: v[-1] for k, v in metrics["dataset"].items()}))
    infos = [p["info"] for p in merged.parts if p.get("info")]
    if infos:
        metrics["info"] = infos[0] if len(infos) == 1 else {"per_batch": infos}
    if (run_dir / "auto.json").exists():
        evidence = json.loads((run_dir / "auto.json").read_text())["auto"]
        metrics["auto"] = {k: evidence[k] for k in ("chosen", "reason", "level", "level_source")}
    io.write_json(run_dir / "metrics.json", metrics)
    plot_metrics(metrics, run_dir / "metrics.png")
    if len(frames) > 1:
        save_animation(frames, run_dir / "refinement.gif")
    write_run_events(run_dir, metrics)  # tensorboard/: the same curves and grids, for `tensorboard --logdir`
    return metrics
