"""Model zoo: architectures by name, and checkpoints that record the architecture they hold.

A checkpoint is a ``torch.save``d dict ``{"format": "dgflow", "models": {role: {"arch", "config",
"state_dict"}}, "meta": {...}, "sha256": ...}`` of tensors and plain values only, so it loads with
``torch.load(weights_only=True)`` and runs no code; ``sha256`` (:func:`dgflow.io.checkpoint_sha256`
of the weights) is checked on load. :func:`load_checkpoint` rebuilds each model from its recorded
architecture and refuses a state dict that does not fit it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import checkpoint_sha256, load_checkpoint_file, torch_save
from .classifier import Classifier
from .diffusion import (ClassifierTimeDiscriminator, ConvTimeDiscriminator, MLPDenoiser, MLPTimeDiscriminator,
                        UNetDenoiser)
from .dcgan import CondDCGANGenerator, CondSNDCGANDiscriminator, DCGANGenerator, SNDCGANDiscriminator, WGANGPCritic
from .flow import RealNVP
from .glow import Glow
from .images import warm_up_spectral_norm  # noqa: F401 (re-exported: dgflow.zoo.warm_up_spectral_norm)
from .mlp import MLPDiscriminator, MLPGenerator
from .mmd import MMDCritic, MMDGenerator, mmd_loss  # noqa: F401 (mmd_loss re-exported)
from .ocf import OCFCritic, OCFGenerator, ocf_distance  # noqa: F401 (ocf_distance re-exported)
from .resnet import ResNetDiscriminator, ResNetGenerator
from .textgan import TextCritic, TextGenerator
from .vae import ConvVAE

ARCHITECTURES: dict[str, type[nn.Module]] = {
    "mlp_generator": MLPGenerator,
    "mlp_discriminator": MLPDiscriminator,
    "dcgan_generator": DCGANGenerator,
    "sndcgan_discriminator": SNDCGANDiscriminator,
    "wgangp_critic": WGANGPCritic,
    "resnet_generator": ResNetGenerator,
    "resnet_discriminator": ResNetDiscriminator,
    "cond_dcgan_generator": CondDCGANGenerator,
    "cond_sndcgan_discriminator": CondSNDCGANDiscriminator,
    "conv_vae": ConvVAE,
    "realnvp": RealNVP,
    "glow": Glow,
    "mmd_generator": MMDGenerator,
    "mmd_critic": MMDCritic,
    "ocf_generator": OCFGenerator,
    "ocf_critic": OCFCritic,
    "classifier": Classifier,
    "text_generator": TextGenerator,
    "text_critic": TextCritic,
    "mlp_denoiser": MLPDenoiser,
    "unet_denoiser": UNetDenoiser,
    "mlp_time_discriminator": MLPTimeDiscriminator,
    "conv_time_discriminator": ConvTimeDiscriminator,
    "classifier_time_discriminator": ClassifierTimeDiscriminator,
}


def build_model(arch: str, **config: Any) -> nn.Module:
    """A fresh model of the registered architecture ``arch`` (:data:`ARCHITECTURES`), built with ``config``."""
    if arch not in ARCHITECTURES:
        raise ValueError(f"unknown architecture {arch!r}; known: {sorted(ARCHITECTURES)}")
    return ARCHITECTURES[arch](**config)


def latent_shape(generator: nn.Module) -> tuple[int, ...]:
    """The latent shape a zoo generator takes: ``generator.latent_shape`` (flows), else ``(generator.z_dim,)``."""
    shape = getattr(generator, "latent_shape", None)
    if shape is not None:
        return tuple(shape)
    z_dim = getattr(generator, "z_dim", None)
    if z_dim is None:
        raise ValueError(f"{type(generator).__name__} has neither latent_shape nor z_dim; give the latent shape "
                         "explicitly (z_dim in the config)")
    return (int(z_dim),)


def save_checkpoint(path: str | os.PathLike, models: dict[str, tuple[str, dict[str, Any], nn.Module]],
                    meta: dict[str, Any] | None = None, extra: dict[str, Any] | None = None) -> None:
    """Save ``{role: (arch, config, module)}`` with the architecture recorded (``extra``: e.g. optimizer state)."""
    records = {role: {"arch": arch, "config": config, "state_dict": module.state_dict()}
               for role, (arch, config, module) in models.items()}
    payload = {"format": "dgflow", "version": 1, "meta": meta or {}, "models": records,
               "sha256": checkpoint_sha256(records), **(extra or {})}
    torch_save(payload, path)


def load_checkpoint(path: str | os.PathLike, map_location: str | torch.device = "cpu",
                    trust: bool = False) -> tuple[dict[str, nn.Module], dict]:
    """Rebuild every model in a dgflow checkpoint; returns ``({role: module}, meta)``.

    The file is loaded without running code (``weights_only``); ``trust=True`` allows full
    unpickling of a file that needs it (only for files from a source you trust).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"checkpoint {path} does not exist; train one first (see `dgflow train --help`)")
    payload = load_checkpoint_file(path, trust=trust, map_location=map_location)
    if not isinstance(payload, dict) or payload.get("format") != "dgflow":
        raise ValueError(f"{path} is not a dgflow checkpoint (no 'format': 'dgflow' record); for a plain state dict, "
                         "build the model yourself and call load_state_dict")
    models = {}
    for role, rec in payload["models"].items():
        model = build_model(rec["arch"], **rec["config"])
        load_state_strict(model, rec["state_dict"], f"{path} [{role}]")
        models[role] = model.to(map_location).eval()
    return models, payload.get("meta", {})


def load_state_strict(model: nn.Module, state: dict[str, torch.Tensor], where: str) -> None:
    """``load_state_dict`` with an error that lists what does not match."""
    own = model.state_dict()
    missing = sorted(set(own) - set(state))
    unexpected = sorted(set(state) - set(own))
    shapes = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(own[k].shape)}"
              for k in own if k in state and state[k].shape != own[k].shape]
    if missing or unexpected or shapes:
        parts = []
        if missing:
            parts.append(f"missing keys {missing[:5]}")
        if unexpected:
            parts.append(f"unexpected keys {unexpected[:5]}")
        if shapes:
            parts.append(f"shape mismatches {shapes[:5]}")
        raise ValueError(f"{where} does not match the {type(model).__name__} architecture: {'; '.join(parts)}. "
                         "Build the model with the settings it was trained with")
    model.load_state_dict(state)
