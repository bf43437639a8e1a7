"""Argument checks shared by the public API, the methods and the samplers: each raises an error that names the fix."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor, nn

from .byo import first_device


def check_int(name: str, value: Any, low: int) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a whole number >= ``low``."""
    if isinstance(value, bool) or not isinstance(value, int) or value < low:
        raise ValueError(f"{name} must be a whole number >= {low}, got {value!r}")


def resolve_device(device: torch.device | str | None, *models: Any) -> torch.device:
    """``device``, else the device of the first parameter found in ``models``, else the CPU."""
    if device is not None:
        return torch.device(device)
    return first_device(*models) or torch.device("cpu")  # also modules inside a lambda or dgflow.wrap


def param_dtype(model: Any) -> torch.dtype:
    """The floating dtype of a module's first floating parameter (float32 for a plain function)."""
    if isinstance(model, nn.Module):
        for p in model.parameters():
            if p.is_floating_point():
                return p.dtype
    return torch.float32


def check_sample_ids(sample_ids: Tensor | Sequence[int], n: int, per: str = "latent") -> Tensor:
    """``n`` distinct whole-number sample ids (each names one sample's random stream) as int64."""
    ids = torch.as_tensor(sample_ids)
    if ids.is_floating_point() or ids.is_complex() or ids.dtype == torch.bool:
        raise TypeError(f"sample_ids must be whole numbers (an integer tensor or list), got dtype {ids.dtype}")
    ids = ids.to(torch.int64)
    if ids.shape != (n,):
        raise ValueError(f"sample_ids must hold one id per {per} ({n}), got shape {tuple(ids.shape)}")
    if len(torch.unique(ids)) != n:
        raise ValueError("sample_ids holds repeated ids; each sample needs its own id (its own random stream), "
                         "otherwise the repeats are copies of one sample")
    return ids


def check_labels(labels: Tensor | None, n: int, name: str = "labels") -> Tensor | None:
    """``labels`` as a tensor with one row per sample (``None`` passes through)."""
    if labels is None:
        return None
    labels = torch.as_tensor(labels)
    if labels.shape[:1] != (n,):
        raise ValueError(f"{name} must hold one label per sample ({n}), got shape {tuple(labels.shape)}")
    return labels


def check_positive(name: str, value: float, allow_zero: bool = False) -> None:
    """Raise ``ValueError`` naming ``name`` unless ``value`` is a finite number > 0 (>= 0 with ``allow_zero``)."""
    ok = (isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
          and (value >= 0 if allow_zero else value > 0))
    if not ok:
        need = "a finite number >= 0" if allow_zero else "a finite number > 0"
        raise ValueError(f"{name} must be {need}, got {value!r}")


def check_steps(steps: int | str) -> None:
    """Raise ``ValueError`` unless ``steps`` is a whole number >= 0 or ``"auto"``."""
    if isinstance(steps, str):
        if steps.lower() != "auto":
            raise ValueError(f"steps must be a whole number >= 0 or 'auto', got {steps!r}")
        return
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 0:
        raise ValueError(f"steps must be a whole number >= 0, got {steps!r}")


def check_step_size(name: str, value: float | str) -> None:
    """A positive finite step size, or ``"auto"``."""
    if isinstance(value, str):
        if value.lower() != "auto":
            raise ValueError(f"{name} must be a finite number > 0 or 'auto', got {value!r}")
        return
    check_positive(name, value)
