"""What every image model in the zoo shares: the two image settings, shape checks, spectral norm.

Image settings (``channels``, ``image_size``), images in ``[-1, 1]``:

* CIFAR-10: ``channels=3, image_size=32``.
* MNIST: ``channels=1, image_size=28``. The convolutional models are the 32x32 ones; at 28x28 a
  generator makes a 32x32 image and crops its 2-pixel border (:func:`crop_to`), and a
  discriminator / critic / encoder pads its input by 2 pixels with ``-1`` (the background
  value of MNIST in ``[-1, 1]``, :func:`pad_to_32`). So models take and return 28x28 MNIST
  images directly, and a CIFAR-style architecture needs no second variant. (The RealNVP flow
  works at 28x28 without padding: it only needs sizes divisible by 2 per scale.)

Spectral norm is :func:`torch.nn.utils.parametrizations.spectral_norm` (one power iteration
per training-mode forward pass; ``u``/``v`` are buffers saved in the state dict).
:func:`warm_up_spectral_norm` runs extra power iterations, as the DGflow paper did before
refining with networks whose ``u`` vectors were not trained state.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.nn.utils.parametrizations import spectral_norm

from ..checks import check_int

IMAGE_SIZES = (28, 32)
WITH_STL10 = (28, 32, 48)  # the DCGAN pair and the classifier also take STL-10 at 48x48 (networks one size up)


def check_image_config(channels: int, image_size: int, allowed: tuple[int, ...] = IMAGE_SIZES, **sizes: int) -> None:
    """Refuse settings the image models do not support, naming the supported ones."""
    for name, value in {"channels": channels, **sizes}.items():
        check_int(name, value, 1)
    if image_size not in allowed:
        extra = " or 48 (STL-10)" if 48 in allowed else ""
        raise ValueError(f"image_size must be 28 (MNIST) or 32 (CIFAR-10){extra}, got {image_size!r}")


def network_size(image_size: int) -> int:
    """The size the convolutional networks work at: 48 for STL-10, else 32 (MNIST is padded / cropped)."""
    return 48 if image_size == 48 else 32


def check_images(x: Tensor, channels: int, image_size: int, who: str) -> None:
    """Raise ``ValueError`` unless ``x`` is shaped ``[B, channels, image_size, image_size]``."""
    if x.ndim != 4 or tuple(x.shape[1:]) != (channels, image_size, image_size):
        raise ValueError(f"{who} takes images shaped [B, {channels}, {image_size}, {image_size}], got "
                         f"{tuple(x.shape)}; build it with the channels/image_size of your data")


def check_latents(z: Tensor, z_dim: int, who: str) -> None:
    """Raise ``ValueError`` unless ``z`` is shaped ``[B, z_dim]``."""
    if z.ndim != 2 or z.shape[1] != z_dim:
        raise ValueError(f"{who} takes latents shaped [B, {z_dim}], got {tuple(z.shape)}")


def pad_to_32(x: Tensor) -> Tensor:
    """28x28 -> 32x32 by a 2-pixel border of -1 (background); 32x32 and 48x48 unchanged."""
    if x.shape[-1] != 28:
        return x
    pad = (32 - x.shape[-1]) // 2
    return F.pad(x, (pad, pad, pad, pad), value=-1.0)


def crop_to(x: Tensor, image_size: int) -> Tensor:
    """Centre crop of a 32x32 image to ``image_size``."""
    if x.shape[-1] == image_size:
        return x
    a = (x.shape[-1] - image_size) // 2
    return x[..., a:a + image_size, a:a + image_size]


def maybe_sn(module: nn.Module, use: bool) -> nn.Module:
    """``module`` with spectral normalisation when ``use``."""
    return spectral_norm(module) if use else module


def spectral_norm_layers(model: nn.Module) -> list[nn.Module]:
    """Modules whose ``weight`` is spectrally normalised."""
    return [m for m in model.modules()
            if hasattr(m, "parametrizations") and "weight" in m.parametrizations
            and any(type(p).__name__ == "_SpectralNorm" for p in m.parametrizations["weight"])]


def spectral_norm_sigma(module: nn.Module) -> tuple[Tensor, Tensor]:
    """``(estimate u^T W v, exact largest singular value)`` of a spectral-norm layer's weight matrix."""
    sn = next(p for p in module.parametrizations["weight"] if type(p).__name__ == "_SpectralNorm")
    w = sn._reshape_weight_to_matrix(module.parametrizations["weight"].original.detach())
    return sn._u @ w @ sn._v, torch.linalg.matrix_norm(w, 2)


@torch.no_grad()
def warm_up_spectral_norm(model: nn.Module, input_shape: Sequence[int] | None = None, iterations: int = 10,
                          labels: Tensor | None = None) -> int:
    """Run ``iterations`` power-iteration steps on every spectral-norm weight of ``model``.

    With ``input_shape`` (e.g. ``(64, 3, 32, 32)``) each step is a forward pass of a standard
    normal batch of that shape (``model(x, labels)`` when ``labels`` are given), as in training;
    without it each layer's weight is read directly, which is the same update. Only the
    spectral-norm parametrizations are switched to train mode, so BatchNorm statistics are left
    alone; every module's mode is restored afterwards (a model in eval mode stays in eval mode).
    Returns the number of spectral-norm layers.
    """
    check_int("iterations", iterations, 0)
    layers = spectral_norm_layers(model)
    modes = {m: m.training for m in model.modules()}
    sn_modules = [p for m in layers for p in m.parametrizations["weight"] if type(p).__name__ == "_SpectralNorm"]
    try:
        for p in sn_modules:
            p.train()
        for _ in range(iterations):
            if input_shape is None:
                for m in layers:
                    m.weight  # noqa: B018 - reading the weight runs one power iteration in train mode
            else:
                x = torch.randn(*input_shape, device=_device_of(model))
                model(x) if labels is None else model(x, labels)
    finally:
        for m, mode in modes.items():
            m.training = mode
    return len(layers)


def _device_of(model: nn.Module) -> torch.device:
    p = next(model.parameters(), None)
    return p.device if p is not None else torch.device("cpu")
