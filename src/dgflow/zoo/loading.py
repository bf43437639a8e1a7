"""Load one model of a run: a registered architecture or an import path, with weights from a checkpoint.

A model is named by a registered architecture (:data:`dgflow.zoo.ARCHITECTURES`) or an import path
``package.module:Class`` built with keyword arguments; its weights come from a dgflow checkpoint (the
role picks the model inside it) or a plain state dict. A path starting with ``pkg:`` is inside the
installed dgflow package. Checkpoints load without running code (``weights_only``) unless ``trust``.
"""

from __future__ import annotations

import importlib
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ..io import load_checkpoint_file
from . import ARCHITECTURES, build_model, load_state_strict

PACKAGE = Path(__file__).resolve().parents[1]  # the installed dgflow package, for pkg: paths

# the config-key prefix of each model kind: gen_path, disc_type, corr_kwargs, ...
KEY_PREFIX = {"generator": "gen", "discriminator": "disc", "corrector": "corr", "denoiser": "denoiser",
              "classifier": "classifier"}


def resolve_path(path: str) -> Path:
    """A filesystem path, or ``pkg:relative/path`` inside the installed dgflow package."""
    if path.startswith("pkg:"):
        return PACKAGE / path[4:]
    return Path(path).expanduser()


def load_model(kind: str, type_: str | None, path: str | None, kwargs: dict[str, Any], role: str,
               device: torch.device, prefix: str | None = None, trust: bool = False) -> nn.Module:
    """Build and load one model of a run (``kind`` is "generator", "discriminator" or "corrector";
    ``prefix`` of its config keys, default from :data:`KEY_PREFIX`: ``gen_path``, ``disc_path``, ...).

    The checkpoint loads without running code unless ``trust`` (see :func:`dgflow.io.load_torch_file`).
    """
    key = prefix or KEY_PREFIX.get(kind, kind)

    payload = None
    if path is not None:
        file = resolve_path(path)
        if not file.is_file():
            raise FileNotFoundError(f"{kind} checkpoint {file} does not exist (from the config's {key}_path)")
        payload = load_checkpoint_file(file, trust=trust)
    if isinstance(payload, dict) and payload.get("format") == "dgflow":
        models = payload["models"]
        rec = models.get(role) or (next(iter(models.values())) if len(models) == 1 else None)
        if rec is None:
            raise ValueError(f"{path} holds models {sorted(models)}, none with the role {role!r}; "
                             f"set {key}_role to one of them")
        if type_ is not None and type_ != rec["arch"]:
            raise ValueError(f"{path} [{role}] holds a {rec['arch']!r}, but the config says {key}_type: {type_!r}")
        model = build_model(rec["arch"], **{**rec["config"], **kwargs})
        load_state_strict(model, rec["state_dict"], f"{path} [{role}]")
        return model.to(device).eval()
    if type_ is None:
        raise ValueError(f"{path} is not a dgflow checkpoint: set {key}_type (and {key}_kwargs) so the "
                         "architecture can be built before loading the state dict")
    if type_ in ARCHITECTURES:
        model = build_model(type_, **kwargs)
    else:
        model = import_class(type_, f"{key}_type")(**kwargs)
    if payload is not None:
        state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
        if not isinstance(state, dict):
            raise ValueError(f"{path} holds neither a dgflow checkpoint nor a state dict")
        load_state_strict(model, state, str(path))
    return model.to(device).eval()


def import_class(spec: str, key: str = "type") -> type[nn.Module]:
    """The ``nn.Module`` subclass an import path ``package.module:Class`` names (nothing else is called)."""
    if ":" not in spec:
        raise ValueError(f"{spec!r} is neither a registered architecture nor an import path 'package.module:Class'")
    module_name, _, attr = spec.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise ValueError(f"cannot import {module_name!r} (from {spec!r}): {exc}") from exc
    obj = module
    for part in attr.split("."):
        if not hasattr(obj, part):
            raise ValueError(f"{module_name} has no attribute {attr!r} (from {spec!r})")
        obj = getattr(obj, part)
    if not (isinstance(obj, type) and issubclass(obj, nn.Module)):
        raise ValueError(f"{key}: {spec!r} is a {type(obj).__name__}, not a torch.nn.Module subclass; an import "
                         "path must name the model's class")
    return obj
