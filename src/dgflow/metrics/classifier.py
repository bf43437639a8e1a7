"""Classifier-based image metrics: a classifier's features (for a "classifier FID") and the Inception Score.

Inception Score (Salimans et al., 2016) from logits, over ``splits`` equal chunks of the N samples:

    p(y|x) = softmax(logits),   p(y) = mean_x p(y|x) over the chunk,
    IS = exp( E_x KL(p(y|x) || p(y)) ) = exp( E_x sum_y p(y|x) (log p(y|x) - log p(y)) )

reported as the mean and standard deviation over the chunks. It lies in [1, number of
classes]: 1 when every prediction is the same, the number of classes for confident
predictions spread evenly over the classes. With Inception's logits it is the usual IS; with
the project's classifier (``dgflow.zoo`` "classifier") it is the "classifier IS".

Per-class accuracy of class-conditional samples (sample i was asked for class y_i):

    acc_c = #{i : y_i = c, argmax logits_i = c} / #{i : y_i = c},   overall = #{i : argmax logits_i = y_i} / N
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn


class ClassifierFeatures(nn.Module):
    """Wrap a classifier with ``features(x) -> [B, F]`` and ``forward(x) -> [B, classes]`` logits."""

    def __init__(self, model: nn.Module):
        super().__init__()
        if not callable(getattr(model, "features", None)):
            raise TypeError(f"{type(model).__name__} has no features(x) method; ClassifierFeatures needs a "
                            "classifier with features(x) -> [B, F] and forward(x) -> logits "
                            "(e.g. dgflow.zoo's 'classifier')")
        self.model = model.eval()

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Penultimate features ``[B, F]``."""
        return self.model.features(x).flatten(1)

    @torch.no_grad()
    def logits(self, x: torch.Tensor) -> torch.Tensor:
        """Class logits ``[B, classes]``."""
        return self.model(x)


def inception_score(logits, splits: int = 10) -> tuple[float, float]:
    """(mean, std) over ``splits`` chunks of exp(E_x KL(p(y|x) || p(y))) for logits ``[N, classes]``."""
    logits = torch.as_tensor(logits).detach().cpu().double()
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, classes], got shape {tuple(logits.shape)}")
    if isinstance(splits, bool) or not isinstance(splits, int) or not 1 <= splits <= len(logits):
        raise ValueError(f"splits must be a whole number in 1..N={len(logits)} (10 is usual), got {splits!r}")
    logp = torch.log_softmax(logits, dim=1)
    scores = []
    for chunk in logp.tensor_split(splits):
        log_py = torch.logsumexp(chunk, dim=0) - np.log(len(chunk))  # log mean_x p(y|x)
        kl = (chunk.exp() * (chunk - log_py)).sum(1)
        scores.append(float(kl.mean().exp()))
    return float(np.mean(scores)), float(np.std(scores))


def per_class_accuracy(logits, requested, num_classes: int | None = None) -> dict[str, float | int | list[float]]:
    """How often a classifier agrees with the class each conditional sample was asked for.

    ``logits``: ``[N, classes]`` of a classifier on the samples; ``requested``: ``[N]`` whole-number class
    labels. Returns ``accuracy`` (overall), ``per_class`` (``acc_c`` for c in 0..num_classes-1), ``min`` and
    ``worst_class`` (the class with the lowest ``acc_c``). ``num_classes`` defaults to the logits' width;
    every class must be requested at least once.
    """
    logits = torch.as_tensor(logits).detach().cpu()
    requested = torch.as_tensor(requested).detach().cpu()
    if logits.ndim != 2:
        raise ValueError(f"logits must be [N, classes], got shape {tuple(logits.shape)}")
    if requested.shape != (len(logits),) or requested.is_floating_point() or requested.is_complex():
        raise ValueError(f"requested must be [N={len(logits)}] whole-number class labels, got "
                         f"{requested.dtype} of shape {tuple(requested.shape)}")
    num_classes = logits.shape[1] if num_classes is None else num_classes
    if len(requested) and (int(requested.min()) < 0 or int(requested.max()) >= num_classes):
        raise ValueError(f"requested labels must lie in 0..{num_classes - 1}, got {int(requested.min())}.."
                         f"{int(requested.max())}")
    counts = torch.bincount(requested.long(), minlength=num_classes)
    if bool((counts == 0).any()):
        missing = torch.nonzero(counts == 0).flatten().tolist()
        raise ValueError(f"classes {missing} are never requested: per-class accuracy needs every class in "
                         f"0..{num_classes - 1} at least once (or pass num_classes)")
    hits = logits.argmax(1) == requested
    per_class = (torch.bincount(requested.long(), weights=hits.double(), minlength=num_classes) / counts).tolist()
    worst = int(np.argmin(per_class))
    return {"accuracy": float(hits.double().mean()), "per_class": per_class, "min": per_class[worst],
            "worst_class": worst}
