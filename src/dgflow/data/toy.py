"""The 2-D datasets of the DGflow paper's first table (as ``docs/methods.md`` defines them).

* 25 Gaussians: means at ``(2i, 2j)`` for ``i, j in {-2..2}``, std 0.05, all divided by 2.828.
* Swiss roll: scikit-learn's swiss roll with noise 0.25, coordinates (0, 2), divided by 7.5.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

SCALE_25G = 2.828
MODES_25G = torch.tensor([(2.0 * i, 2.0 * j) for i in range(-2, 3) for j in range(-2, 3)]) / SCALE_25G
STD_25G = 0.05 / SCALE_25G


def sample_25gaussians(n: int, seed: int = 0) -> Tensor:
    """``n`` points of the 25 Gaussians: means ``(2i, 2j) / 2.828``, ``i, j in -2..2``, std ``0.05 / 2.828``."""
    rng = np.random.default_rng(seed)
    modes = MODES_25G.numpy()[rng.integers(0, len(MODES_25G), size=n)]
    return torch.from_numpy(modes + STD_25G * rng.standard_normal((n, 2))).float()


def sample_swissroll(n: int, seed: int = 0) -> Tensor:
    """``n`` points of scikit-learn's swiss roll (noise 0.25), coordinates 0 and 2, divided by 7.5."""
    from sklearn.datasets import make_swiss_roll

    x, _ = make_swiss_roll(n_samples=n, noise=0.25, random_state=seed)
    return torch.from_numpy(x[:, [0, 2]] / 7.5).float()


TOY_DATASETS = {"25gaussians": sample_25gaussians, "swissroll": sample_swissroll}


def sample_toy(name: str, n: int, seed: int = 0) -> Tensor:
    """``n`` points of the 2-D dataset ``name`` (``25gaussians`` or ``swissroll``)."""
    if name not in TOY_DATASETS:
        raise ValueError(f"unknown 2-D dataset {name!r}; choose one of {sorted(TOY_DATASETS)}")
    return TOY_DATASETS[name](n, seed)
