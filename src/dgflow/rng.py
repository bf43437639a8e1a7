"""Per-sample random streams that do not depend on batch size, device or process count.

Every random number dgflow draws is a pure function of ``(seed, sample id, step, stream,
element)``: a counter-based generator built from a 32-bit integer hash (Wellons'
"triple32", a bijection with low bias) evaluated with vectorised ``int64`` arithmetic.
Sample ``i`` therefore gets the same noise whether it is refined alone, in a batch of 7
or of 500, on the CPU or a GPU, in one process or spread over many — the property
NVlabs' EDM gets from one ``torch.Generator`` per sample, without a Python loop per sample.

Gaussian draws use the Box-Muller transform on pairs of 32-bit uniforms (float64), so the
largest representable ``|xi|`` is about 6.7.
"""

from __future__ import annotations

import zlib
from collections.abc import Sequence

import torch

_MASK32 = 0xFFFFFFFF


def _mul32_(x: torch.Tensor, c: int) -> torch.Tensor:
    """In place: ``x = (x * c) mod 2**32`` for ``0 <= x < 2**32``, without int64 overflow."""
    lo, hi = c & 0xFFFF, c >> 16
    high = (x * hi).bitwise_and_(0xFFFF).bitwise_left_shift_(16)
    return x.mul_(lo).add_(high).bitwise_and_(_MASK32)


def _xorshift_(x: torch.Tensor, k: int) -> torch.Tensor:
    return x.bitwise_xor_(x >> k)


def hash32(x: torch.Tensor) -> torch.Tensor:
    """Wellons' triple32 integer hash on int64 tensors holding values in ``[0, 2**32)``."""
    x = _xorshift_(x.clone(), 17)
    x = _xorshift_(_mul32_(x, 0xED5AD4BB), 11)
    x = _xorshift_(_mul32_(x, 0xAC4C1B51), 15)
    return _xorshift_(_mul32_(x, 0x31848BAB), 14)


def _hash32_int(x: int) -> int:
    """triple32 on one Python integer (the same function as :func:`hash32`)."""
    x ^= x >> 17
    x = (x * 0xED5AD4BB) & _MASK32
    x ^= x >> 11
    x = (x * 0xAC4C1B51) & _MASK32
    x ^= x >> 15
    x = (x * 0x31848BAB) & _MASK32
    return x ^ (x >> 14)


def hash_int(*parts: int) -> int:
    """Hash a sequence of whole numbers >= 0 (any size) into one 32-bit key."""
    h = 0x9E3779B9
    for part in parts:
        part = int(part)
        if part < 0:
            raise ValueError(f"hash_int takes whole numbers >= 0, got {part}")
        while True:  # fold integers wider than 32 bits
            h = _hash32_int(h ^ (part & _MASK32))
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
        element = hash32(torch.arange(count, dtype=torch.int64, device=self.device).bitwise_xor_(0x5BD1E995))
        return hash32(row[:, None] ^ element[None, :])  # [B, count]: one hash pass per draw

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
        """Standard normal draws shaped ``[B, *shape]``.

        Box-Muller on pairs of uniforms: element ``2k`` is ``sqrt(-2 ln u1) cos(2 pi u2)`` and
        element ``2k + 1`` the matching ``sin``, with ``(u1, u2)`` from hashed counters ``2k, 2k + 1``.
        """
        shape = tuple(shape)
        count = _numel(shape)
        pairs = (count + 1) // 2
        bits = self._bits(2 * pairs, step, stream).to(torch.float64).add_(0.5).div_(2.0**32)
        u1, u2 = bits[:, 0::2], bits[:, 1::2]
        radius = torch.log(u1).mul_(-2.0).sqrt_()
        angle = u2.mul_(2.0 * torch.pi)
        xi = torch.stack((radius * torch.cos(angle), radius * torch.sin(angle)), dim=2).reshape(len(self), 2 * pairs)
        return xi[:, :count].to(dtype).reshape(len(self), *shape)

    def randint(self, high: int, *, step: int = 0, stream: str = "randint") -> torch.Tensor:
        """One integer in ``[0, high)`` per sample."""
        u = self.uniform((), step=step, stream=stream, dtype=torch.float64)
        return torch.clamp((u * high).long(), max=high - 1)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
