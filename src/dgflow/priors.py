"""Latent priors ``p_Z``: sampling, log-density, score and support constraint.

A user prior only needs ``sample(n) -> [n, *shape]`` and ``log_prob(z) -> [n]``;
dgflow adds the rest (score by autograd, per-sample seeded draws by forking the RNG).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import torch
from torch import Tensor

from .rng import SampleNoise, hash_int, stream_id


class Prior:
    """Base class; subclasses set ``shape`` and implement ``log_prob`` and ``draw``."""

    shape: tuple[int, ...]

    def log_prob(self, z: Tensor) -> Tensor:
        """``log p_Z(z)`` per sample, shape ``[B]``."""
        raise NotImplementedError

    def draw(self, noise: SampleNoise, *, step: int = 0, stream: str = "prior",
             dtype: torch.dtype = torch.float32) -> Tensor:
        """One sample per stream of ``noise`` (batch-size independent)."""
        raise NotImplementedError

    def sample(self, n: int, seed: int = 0) -> Tensor:
        """``n`` latents, sample ``i`` from its own stream ``(seed, i)``."""
        return self.draw(SampleNoise(seed, torch.arange(n)))

    def score(self, z: Tensor) -> Tensor:
        """``grad_z log p_Z(z)``."""
        with torch.enable_grad():
            z = z.detach().requires_grad_(True)
            (g,) = torch.autograd.grad(self.log_prob(z).sum(), z)
        return g

    def constrain(self, z: Tensor) -> Tensor:
        """Map ``z`` back into the support (identity for unbounded priors)."""
        return z


class NormalPrior(Prior):
    """Standard normal ``N(0, I)`` on latents of shape ``shape``."""

    def __init__(self, shape: Sequence[int]):
        self.shape = tuple(int(s) for s in shape)
        self._dim = math.prod(self.shape)

    def log_prob(self, z: Tensor) -> Tensor:
        return -0.5 * z.flatten(1).pow(2).sum(1) - 0.5 * self._dim * math.log(2 * math.pi)

    def score(self, z: Tensor) -> Tensor:
        return -z

    def draw(self, noise: SampleNoise, *, step: int = 0, stream: str = "prior",
             dtype: torch.dtype = torch.float32) -> Tensor:
        return noise.normal(self.shape, step=step, stream=stream, dtype=dtype)

    def __repr__(self) -> str:
        return f"NormalPrior(shape={self.shape})"


class UniformPrior(Prior):
    """Uniform on ``[low, high]^k`` (``[-1, 1]`` by default); steps are clipped back into the box."""

    def __init__(self, shape: Sequence[int], low: float = -1.0, high: float = 1.0):
        if not high > low:
            raise ValueError(f"UniformPrior needs high > low, got low={low}, high={high}")
        self.shape = tuple(int(s) for s in shape)
        self.low, self.high = float(low), float(high)
        self._log_density = -math.prod(self.shape) * math.log(self.high - self.low)

    def log_prob(self, z: Tensor) -> Tensor:
        inside = ((z >= self.low) & (z <= self.high)).flatten(1).all(1)
        out = torch.full(inside.shape, self._log_density, dtype=z.dtype, device=z.device)
        return out.masked_fill(~inside, -math.inf)

    def score(self, z: Tensor) -> Tensor:
        return torch.zeros_like(z)

    def constrain(self, z: Tensor) -> Tensor:
        return z.clamp(self.low, self.high)

    def draw(self, noise: SampleNoise, *, step: int = 0, stream: str = "prior",
             dtype: torch.dtype = torch.float32) -> Tensor:
        u = noise.uniform(self.shape, step=step, stream=stream, dtype=dtype)
        return self.low + (self.high - self.low) * u

    def __repr__(self) -> str:
        return f"UniformPrior(shape={self.shape}, low={self.low}, high={self.high})"


class UserPrior(Prior):
    """Adapter for a user object with ``sample(n)`` and ``log_prob(z)``.

    Seeded draws call ``sample(1)`` once per sample under a forked torch RNG seeded from
    ``(seed, sample id)``, so they too are independent of the batch size.
    """

    def __init__(self, prior: Any, shape: Sequence[int] | None = None):
        missing = [m for m in ("sample", "log_prob") if not callable(getattr(prior, m, None))]
        if missing:
            raise TypeError(f"a prior object needs methods sample(n) and log_prob(z); {type(prior).__name__} "
                            f"lacks {', '.join(missing)}. Use prior='normal' or 'uniform' otherwise.")
        self.prior = prior
        if shape is None:
            with torch.random.fork_rng(devices=[]):  # leave the caller's RNG alone
                shape = prior.sample(1).shape[1:]
        self.shape = tuple(shape)

    def log_prob(self, z: Tensor) -> Tensor:
        return self.prior.log_prob(z)

    def constrain(self, z: Tensor) -> Tensor:
        constrain = getattr(self.prior, "constrain", None)
        return constrain(z) if callable(constrain) else z

    def draw(self, noise: SampleNoise, *, step: int = 0, stream: str = "prior",
             dtype: torch.dtype = torch.float32) -> Tensor:
        rows = []
        for sid in noise.sample_ids.tolist():
            with torch.random.fork_rng(devices=[]):
                torch.manual_seed(hash_int(noise.seed, sid, step, stream_id(stream)))
                rows.append(self.prior.sample(1).reshape(1, *self.shape))
        return torch.cat(rows).to(device=noise.device, dtype=dtype)

    def __repr__(self) -> str:
        return f"UserPrior({self.prior!r})"


def make_prior(prior: str | Any, shape: Sequence[int] | None) -> Prior:
    """``"normal"`` | ``"uniform"`` | a :class:`Prior` | any object with ``sample``/``log_prob``."""
    if isinstance(prior, Prior):
        if shape is not None and tuple(shape) != prior.shape:
            raise ValueError(f"latents have shape {tuple(shape)} but the prior is over shape {prior.shape}")
        return prior
    if isinstance(prior, str):
        if shape is None:
            raise ValueError(f"prior={prior!r} needs the latent shape: pass z or latent_shape")
        if prior.lower() in ("normal", "gaussian"):
            return NormalPrior(shape)
        if prior.lower() == "uniform":
            return UniformPrior(shape)
        raise ValueError(f"unknown prior {prior!r}; use 'normal', 'uniform' or an object with sample/log_prob")
    return UserPrior(prior, shape)
