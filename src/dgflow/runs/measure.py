"""What a run measures, and the real data it compares against (from a run's ``dataset`` and paths).

* 2-D datasets: :func:`dgflow.metrics.toy_scores` against held-out points (seed ``10_000 + seed``);
* ``text``: JS-4 / JS-6 (:func:`dgflow.metrics.text_scores`) against the held-out sentences of the
  text GAN checkpoint's corpus;
* images: Inception FID against ``fid_ref`` (mu/sigma npz), and classifier FID / IS with the classifier
  at ``classifier_path`` against the real test split under ``data_root``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch

from .. import distributed
from ..zoo.loading import load_model, resolve_path
from ..data import load_real_images
from ..text.data import Vocabulary, checkpoint_vocabulary, real_sentences
from ..data.toy import sample_toy

TOY_DATASETS = ("25gaussians", "swissroll")
Measure = Callable[[torch.Tensor], dict[str, float]]


def make_metrics(cfg: Any) -> Measure:
    """The metrics of a run's samples ``x``: ``{name: value}``."""
    if cfg.dataset in TOY_DATASETS:
        from ..metrics import toy_scores

        real = sample_toy(cfg.dataset, min(cfg.num_imgs, 10_000), seed=10_000 + cfg.seed)
        return lambda x: {k: float(v) for k, v in toy_scores(cfg.dataset, x, real).items() if v is not None}
    if cfg.dataset == "text":
        from ..metrics import text_scores

        vocab, meta = text_vocabulary(cfg)
        real, _ = real_sentences(meta)
        return lambda x: text_scores(vocab.decode(x, strip=False), real)
    parts: list[Measure] = []
    device = distributed.rank_device(cfg.device)
    from ..metrics import (ClassifierFeatures, InceptionFeatures, compute_stats, extract_features, fid_from_stats,
                           inception_score, load_stats)

    if cfg.fid_ref:
        ref = load_stats(resolve_path(cfg.fid_ref))
        weights = getattr(cfg, "inception_weights", None)  # `dgflow sample` configs have no such key
        inception = InceptionFeatures(weights and resolve_path(weights), device=device)
        parts.append(lambda x: {"fid_inception": fid_from_stats(
            *compute_stats(extract_features(inception, x, batch_size=cfg.batch_size)), *ref)})
    if cfg.classifier_path:
        if cfg.data_root is None:
            raise ValueError("classifier metrics need the real data: set data_root (a folder holding the dataset: "
                             "`dgflow data mnist --out DIR`)")
        classifier = ClassifierFeatures(load_model("classifier", "classifier", cfg.classifier_path, {}, "classifier",
                                                   device, trust=getattr(cfg, "trust_checkpoint", False)))
        real = real_images(cfg, "test")
        with torch.no_grad():
            real_stats = compute_stats(torch.cat([classifier(c.to(device)).cpu() for c in real.split(cfg.batch_size)]))

        def classifier_metrics(x: torch.Tensor) -> dict[str, float]:
            with torch.no_grad():
                feats = torch.cat([classifier(c.to(device)).cpu() for c in x.split(cfg.batch_size)])
                logits = torch.cat([classifier.logits(c.to(device)).cpu() for c in x.split(cfg.batch_size)])
            is_mean, _ = inception_score(logits, splits=min(10, len(logits)))
            return {"fid_classifier": fid_from_stats(*compute_stats(feats), *real_stats), "is_classifier": is_mean}

        parts.append(classifier_metrics)
    return lambda x: {k: v for part in parts for k, v in part(x).items()}


def text_vocabulary(cfg: Any) -> tuple[Vocabulary, dict[str, Any]]:
    """The vocabulary (and training record) saved with the run's text GAN checkpoint ``gen_path``."""
    try:
        return checkpoint_vocabulary(resolve_path(cfg.gen_path), trust=cfg.trust_checkpoint)
    except ValueError as exc:
        raise ValueError(f"dataset: text needs a checkpoint from `dgflow train textgan` (with its vocabulary) as "
                         f"gen_path; {cfg.gen_path} has none") from exc


def real_images(cfg: Any, split: str) -> torch.Tensor:
    """The real images of the run's ``dataset`` split under ``data_root``, in [-1, 1]."""
    return load_real_images(cfg.dataset, resolve_path(cfg.data_root), split)


def real_samples(cfg: Any, count: int, seed_offset: int = 20_000) -> torch.Tensor:
    """``count`` held-out real samples (MH-GAN's chains and calibration, the "auto" stopping level)."""
    if cfg.dataset in TOY_DATASETS:
        return sample_toy(cfg.dataset, count, seed=seed_offset + cfg.seed)
    if cfg.data_root is None:
        raise ValueError("held-out real samples (MH-GAN, heldout_real) need the data: set data_root (and dataset: "
                         "mnist or cifar10), or use a 2-D dataset")
    real = real_images(cfg, "test")
    generator = torch.Generator().manual_seed(cfg.seed + seed_offset - 20_000)  # MH-GAN: the seed as before
    return real[torch.randperm(len(real), generator=generator)[:count]]


def plot_real(cfg: Any) -> torch.Tensor | None:
    """Real points drawn under a 2-D run's scatter plots (held out as the metrics' are; fixes the axes)."""
    return sample_toy(cfg.dataset, 2000, seed=10_000 + cfg.seed) if cfg.dataset in TOY_DATASETS else None
