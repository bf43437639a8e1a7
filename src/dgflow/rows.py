"""Per-sample tensor helpers: a ``[B]`` vector against a ``[B, ...]`` batch, row-wise choice between two states."""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor


def per_sample(s: Tensor, like: Tensor) -> Tensor:
    """Reshape a ``[B]`` tensor to broadcast against ``[B, ...]``."""
    return s.reshape(-1, *([1] * (like.ndim - 1)))


def select_rows(mask: Tensor, new: NamedTuple, old: NamedTuple) -> NamedTuple:
    """Field-wise ``where(mask, new, old)`` over the batch dimension (``None`` fields pass through)."""
    fields = []
    for a, b in zip(new, old):
        if a is None or b is None:
            fields.append(a)
        else:
            fields.append(torch.where(per_sample(mask, a), a, b))
    return type(new)(*fields)
