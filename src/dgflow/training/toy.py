"""Train and save the 2-D WGAN-GP pairs the main job uses (:mod:`dgflow.zoo.toy` loads them).

The package ships one trained pair per dataset in ``dgflow/toy/weights/``; they were made by

    dgflow train toy --dataset 25gaussians --out src/dgflow/toy/weights/25gaussians.pt
    dgflow train toy --dataset swissroll   --out src/dgflow/toy/weights/swissroll.pt
"""

from __future__ import annotations

import os
import time
from typing import Any

import torch
from torch import nn

from ..data.toy import sample_toy
from ..zoo import build_model, save_checkpoint
from ..zoo.toy import Z_DIM
from .wgan_gp import train_wgan_gp

TOY_TRAINING = dict(iterations=3000, batch_size=256, lr=1e-4, betas=(0.5, 0.9), n_critic=5, gp_weight=0.1)


def train_toy(dataset: str, out: str | os.PathLike, seed: int = 0, progress: bool = True,
              **overrides: Any) -> tuple[nn.Module, nn.Module]:
    """Train the paper's 2-D WGAN-GP (G 2-256-256-256-2, D 2-512-512-512-1) and save a checkpoint."""
    settings = {**TOY_TRAINING, **overrides}
    torch.manual_seed(seed)
    g_cfg, d_cfg = {"z_dim": Z_DIM}, {}
    generator, critic = build_model("mlp_generator", **g_cfg), build_model("mlp_discriminator", **d_cfg)
    data = sample_toy(dataset, 100_000, seed=seed + 1000)
    start = time.perf_counter()
    log = train_wgan_gp(generator, critic, data, Z_DIM, seed=seed, progress=progress, **settings)
    meta = {"dataset": dataset, "seed": seed, "training": settings, "z_dim": Z_DIM, "prior": "normal",
            "seconds": round(time.perf_counter() - start, 1), "final_log": log[-1] if log else {}}
    save_checkpoint(out, {"generator": ("mlp_generator", g_cfg, generator),
                          "discriminator": ("mlp_discriminator", d_cfg, critic)}, meta)
    return generator, critic
