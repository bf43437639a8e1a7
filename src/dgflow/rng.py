"""Per-sample random streams that do not depend on batch size, device or process count.

Every random number dgflow draws is a pure function of ``(seed, sample id, step, stream,
element)``: a counter-based generator built from a 32-bit integer hash (Wellons'
"triple32", a bijection with low bias) evaluated with vectorised ``int64`` arithmetic.
Sample ``i`` therefore gets the same noise whether it is refined alone, in a batch of 7
or of 500, on the CPU or a GPU, in one process or spread over many — the property
NVlabs' EDM gets from one ``torch.Generator`` per sample, without a Python loop per sample.

Gaussian draws use the Box-Muller transform on two 32-bit uniforms (float64), so the
largest representable ``|xi|`` is about 6.7.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch

_MASK32 = 0xFFFFFFFF


def _mul32(x: torch.Tensor, c: int) -> torch.Tensor:
    """``(x * c) mod 2**32`` for ``0 <= x < 2**32`` without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    return (x * lo + (((x * hi) & 0xFFFF) << 16)) & _MASK32


def hash32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' triple32 integer hash on int64 tensors holding values in ``[0, 2**32)``."""
    x = x ^ (x >> 17)
    x = _mul32(x, 0xED5AD4BB)
    x = x ^ (x >> 11)
    x = _mul32(x, 0xAC4C1B51)
    x = x ^ (x >> 15)
    x = _mul32(x, 0x31848BAB)
    return x ^ (x >> 14)


def hash_int(*parts: int) -> int:
    """Hash a sequence of Python integers (any size) into one 32-bit key."""
    h = 0x9E3779B9
    for part in parts:
        part = int(part)
        if part < 0:
            raise ValueError(f"hash_int takes whole numbers >= 0, got {part}")
        while True:  # fold integers wider than 32 bits
            h = int(hash32(torch.tensor(h ^ (part & _MASK32))))
            part >>= 32
            if part == 0:
                break
    return h


def stream_id(name: str) -> int:
    """A stable integer for a stream name (``"noise"``, ``"accept"``, ...)."""
    return zlib.crc32(name.encode())


class SampleNoise:
    """Independent random streams for a set of samples, keyed by ``(seed, sample id)``.

    ``noise.normal(shape, step=n, stream="noise")`` returns a ``[B, *shape]`` tensor whose row
    ``b`` depends only on ``seed``, ``sample_ids[b]``, ``n``, the stream name and ``shape``.
    """

    def __init__(self, seed: int, sample_ids: torch.Tensor | Sequence[int], device: torch.device | str = "cpu"):
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise ValueError(f"seed must be a whole number >= 0, got {seed!r}")
        ids = torch.atleast_1d(torch.as_tensor(sample_ids, dtype=torch.int64))
        if ids.ndim != 1:
            raise ValueError(f"sample_ids must be one-dimensional, got shape {tuple(ids.shape)}")
        if len(ids) and (int(ids.min()) < 0 or int(ids.max()) > _MASK32):
            raise ValueError("sample_ids must lie in [0, 2**32)")
        self.seed = int(seed)
        self.device = torch.device(device)
        self.sample_ids = ids.to(self.device)
        self._keys = hash32(self.sample_ids ^ hash_int(self.seed))

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index) -> SampleNoise:
        """The streams of a subset of the samples (same draws as in the full set)."""
        return SampleNoise(self.seed, torch.atleast_1d(self.sample_ids[index]), self.device)

    def _bits(self, count: int, step: int, stream: str) -> torch.Tensor:
        """``[B, count]`` independent 32-bit integers."""
        counter = hash_int(step, stream_id(stream))
        row = hash32(self._keys ^ counter)  # [B]
        element = torch.arange(count, dtype=torch.int64, device=self.device)
        return hash32(hash32(row[:, None] ^ element[None, :]) ^ 0x5BD1E995)

    def uniform(self, shape: Sequence[int] = (), *, step: int = 0, stream: str = "uniform",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniform draws in the open interval (0, 1), shaped ``[B, *shape]``."""
        shape = tuple(shape)
        count = _numel(shape)
        u = (self._bits(count, step, stream).to(torch.float64) + 0.5) / 2.0**32
        u = u.to(dtype)  # rounding to a narrower float may reach 1.0: keep the interval open
        return u.clamp(max=1.0 - torch.finfo(dtype).eps / 2).reshape(len(self), *shape)

    def normal(self, shape: Sequence[int] = (), *, step: int = 0, stream: str = "normal",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal draws shaped ``[B, *shape]`` (Box-Muller: sqrt(-2 ln u1) cos(2 pi u2))."""
        shape = tuple(shape)
        count = _numel(shape)
        bits = self._bits(2 * count, step, stream).to(torch.float64)
        u1 = (bits[:, :count] + 0.5) / 2.0**32
        u2 = (bits[:, count:] + 0.5) / 2.0**32
        xi = torch.sqrt(-2.0 * torch.log(u1)) * torch.cos(2.0 * torch.pi * u2)
        return xi.to(dtype).reshape(len(self), *shape)

    def randint(self, high: int, *, step: int = 0, stream: str = "randint") -> torch.Tensor:
        """One integer in ``[0, high)`` per sample."""
        u = self.uniform((), step=step, stream=stream, dtype=torch.float64)
        return torch.clamp((u * high).long(), max=high - 1)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
