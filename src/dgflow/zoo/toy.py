"""The shipped 2-D models of the DGflow paper: one trained WGAN-GP pair per toy dataset.

The weights are package data in ``dgflow/toy/weights/`` (configs name them ``pkg:toy/weights/NAME.pt``);
:func:`dgflow.training.toy.train_toy` made them. The networks are :mod:`dgflow.zoo.mlp`'s.
"""

from __future__ import annotations

import os
from pathlib import Path

from torch import nn

from . import load_checkpoint

WEIGHTS = Path(__file__).parents[1] / "toy" / "weights"
Z_DIM = 2


def load_toy(dataset: str, path: str | os.PathLike | None = None) -> tuple[nn.Module, nn.Module, dict]:
    """The shipped (or given) 2-D generator and critic for ``dataset``."""
    path = Path(path) if path is not None else WEIGHTS / f"{dataset}.pt"
    models, meta = load_checkpoint(path)
    return models["generator"], models["discriminator"], meta
