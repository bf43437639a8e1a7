"""Per-sample random streams that do not depend on batch size, device or process count.

Every random number dgflow draws is a pure function of ``(seed, sample id, step, stream,
element)``: a counter-based generator, SplitMix64 (Steele, Lea & Flood, "Fast splittable
pseudorandom number generators", OOPSLA 2014) evaluated with vectorised ``int64`` arithmetic
(``+`` and ``*`` wrap modulo ``2**64``; logical shifts are arithmetic shifts plus a mask)::

    key(sample)              = mix64(seed_key + sample_id * G)
    counter(step, s, kind)   = mix64(stream_key(s, kind) + step * G)
    bits(sample, step, s)_j  = mix64(key(sample) + counter(step, s, kind) + (j + 1) * G)   # j = 0, 1, ...

with ``G = 0x9E3779B97F4A7C15`` and ``mix64`` SplitMix64's finaliser (three xor-shifts, two
multiplications): each (sample, step, stream) reads a SplitMix64 sequence from its own random
64-bit starting point, one hash per pair of 32-bit draws. Sample ``i`` therefore gets the same noise whether it is refined alone, in a
batch of 7 or of 500, in one process or spread over many — the property NVlabs' EDM gets from one
``torch.Generator`` per sample, without a Python loop per sample. The integers are identical on
every device; the floats made from them agree up to the rounding of ``log``/``cos``/``sin``.

Each 64-bit hash gives two 32-bit uniforms. Gaussian draws use the Box-Muller transform on them,
two normals per hash: for a draw of ``2P`` (or ``2P - 1``) elements, element ``j < P`` is
``sqrt(-2 ln u1_j) cos(2 pi u2_j)`` and element ``P + j`` the matching ``sin``, with ``u1`` from
the high and ``u2`` from the low 32 bits of hash ``j``. ``u1 >= 2**-33``, so the largest
``|xi|`` is about 6.8. The arithmetic runs in float32 (float64 when float64 is asked for).

A draw requested for step ``n + 1`` right after step ``n`` of the same stream and shape
prefetches a block of following steps in one vectorised call (served from memory afterwards):
refiners call once per step, and a tiny per-step draw would otherwise cost more in Python and
dispatch than in arithmetic. The values do not depend on the blocking.

(Until issue 15 the streams used a 32-bit triple32 hash per draw and float64 Box-Muller with
interleaved cos/sin; the same seeds now give different, equally distributed draws.)
"""

from __future__ import annotations

import math
import operator
import zlib
from collections.abc import Sequence

import torch

_MASK32 = 0xFFFFFFFF
_MASK64 = 2**64 - 1
_GOLDEN = 0x9E3779B97F4A7C15  # 2**64 / golden ratio: the Weyl increment of SplitMix64
_MUL1, _MUL2 = 0xBF58476D1CE4E5B9, 0x94D049BB133111EB
_NORMAL, _UNIFORM = 0, 1  # the kind of draw is part of the counter: normal and uniform draws differ
PREFETCH_ELEMENTS = 2**18  # at most this many draws per prefetched block ...
PREFETCH_STEPS = 32  # ... and at most this many steps


def _signed(v: int) -> int:
    """The int64 with the same 64 bits as the unsigned integer ``v``."""
    v &= _MASK64
    return v - 2**64 if v >= 2**63 else v


_G = _signed(_GOLDEN)
_M1, _M2 = _signed(_MUL1), _signed(_MUL2)


def _xorshift_(x: torch.Tensor, k: int, scratch: torch.Tensor) -> torch.Tensor:
    """In place: ``x ^= x >>> k`` (logical shift of the 64 bits), with ``scratch`` shaped like ``x``."""
    return x.bitwise_xor_(torch.bitwise_right_shift(x, k, out=scratch).bitwise_and_((1 << (64 - k)) - 1))


def mix64_(x: torch.Tensor, scratch: torch.Tensor | None = None) -> torch.Tensor:
    """In place: SplitMix64's finaliser on the 64 bits of each ``int64`` element (a bijection)."""
    scratch = torch.empty_like(x) if scratch is None else scratch
    x = _xorshift_(x, 30, scratch).mul_(_M1)
    x = _xorshift_(x, 27, scratch).mul_(_M2)
    return _xorshift_(x, 31, scratch)


def mix64_int(x: int) -> int:
    """:func:`mix64_` on one unsigned Python integer (the reference the tensor version is tested against)."""
    x &= _MASK64
    x ^= x >> 30
    x = (x * _MUL1) & _MASK64
    x ^= x >> 27
    x = (x * _MUL2) & _MASK64
    return x ^ (x >> 31)


def hash64_int(*parts: int) -> int:
    """Hash whole numbers >= 0 (any size) into one unsigned 64-bit key."""
    h = _GOLDEN
    for part in parts:
        part = int(part)
        if part < 0:
            raise ValueError(f"hash64_int takes whole numbers >= 0, got {part}")
        while True:  # fold integers wider than 64 bits
            h = mix64_int((h ^ (part & _MASK64)) + _GOLDEN)
            part >>= 64
            if part == 0:
                break
    return h


def _hash32_int(x: int) -> int:
    """Wellons' triple32 integer hash on one Python integer in ``[0, 2**32)``."""
    x ^= x >> 17
    x = (x * 0xED5AD4BB) & _MASK32
    x ^= x >> 11
    x = (x * 0xAC4C1B51) & _MASK32
    x ^= x >> 15
    x = (x * 0x31848BAB) & _MASK32
    return x ^ (x >> 14)


def hash_int(*parts: int) -> int:
    """Hash a sequence of whole numbers >= 0 (any size) into one 32-bit key (a ``torch.manual_seed``)."""
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
    Do not modify a returned tensor in place (it may be a view of a prefetched block).
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
        self._keys = mix64_(self.sample_ids * _G + _signed(hash64_int(self.seed)))
        self._blocks: dict[tuple, tuple[int, torch.Tensor]] = {}  # prefetched steps per (kind, shape, ...)
        self._last_step: dict[tuple, int] = {}

    def __len__(self) -> int:
        return len(self.sample_ids)

    def __getitem__(self, index) -> SampleNoise:
        """The streams of a subset of the samples (same draws as in the full set)."""
        return SampleNoise(self.seed, torch.atleast_1d(self.sample_ids[index]), self.device)

    def _hashes(self, pairs: int, steps: range, stream: str, kind: int, scratch: torch.Tensor) -> torch.Tensor:
        """``[len(steps), B, pairs]`` 64-bit hashes: element ``j`` of step ``s`` is ``bits(sample, s)_j``."""
        # counter(s) = mix64(stream key + s G), made on the device (no host-device copy, no sync)
        step = torch.arange(steps.start, steps.stop, dtype=torch.int64, device=self.device)
        counters = mix64_(step.mul_(_G).add_(_signed(hash64_int(stream_id(stream), kind))))
        element = torch.arange(1, pairs + 1, dtype=torch.int64, device=self.device).mul_(_G)
        rows = self._keys[None, :] + counters[:, None]  # [steps, B]
        return mix64_(rows[:, :, None] + element, scratch)

    def _draw(self, kind: int, shape: Sequence[int], step: int, stream: str, dtype: torch.dtype) -> torch.Tensor:
        """Step ``step`` of a stream, from a prefetched block when the caller walks through steps in order."""
        shape = tuple(shape)
        key = (kind, shape, stream, dtype)
        block = self._blocks.get(key)
        if block is not None and type(step) is int and block[0] <= step < block[1]:  # the fast path: a prefetched step
            self._last_step[key] = step
            return block[2][step - block[0]]
        step = operator.index(step)
        if step < 0:
            raise ValueError(f"step must be a whole number >= 0, got {step!r}")
        shape = tuple(int(s) for s in shape)
        key = (kind, shape, stream, dtype)
        ahead = 1
        if self._last_step.get(key) == step - 1:  # sequential use: prefetch the next steps
            ahead = max(1, min(PREFETCH_STEPS, PREFETCH_ELEMENTS // max(1, len(self) * _numel(shape))))
        make = self._normals if kind == _NORMAL else self._uniforms
        values = make(_numel(shape), range(step, step + ahead), stream, dtype).reshape(ahead, len(self), *shape)
        self._blocks[key] = (step, step + ahead, values)  # [first step, end step, [steps, B, *shape]]
        self._last_step[key] = step
        return values[0]

    def _uniforms(self, count: int, steps: range, stream: str, dtype: torch.dtype) -> torch.Tensor:
        pairs = (count + 1) // 2
        h = self._hashes(pairs, steps, stream, _UNIFORM, torch.empty((len(steps), len(self), pairs), dtype=torch.int64,
                                                                     device=self.device))
        bits = torch.cat(((h >> 32).bitwise_and_(_MASK32), h.bitwise_and_(_MASK32)), dim=2)[:, :, :count]
        u = bits.to(torch.float64).add_(0.5).mul_(2.0**-32).to(dtype)
        return u.clamp_(max=1.0 - torch.finfo(dtype).eps / 2)  # a narrower float may round to 1.0: keep (0, 1)

    def _normals(self, count: int, steps: range, stream: str, dtype: torch.dtype) -> torch.Tensor:
        pairs = (count + 1) // 2
        work = torch.float64 if dtype == torch.float64 else torch.float32
        scratch = torch.empty((len(steps), len(self), pairs), dtype=torch.int64, device=self.device)
        h = self._hashes(pairs, steps, stream, _NORMAL, scratch)
        u1 = torch.bitwise_right_shift(h, 32, out=scratch).bitwise_and_(_MASK32).to(work).add_(0.5).mul_(2.0**-32)
        angle = h.bitwise_and_(_MASK32).to(work).mul_(2 * math.pi * 2.0**-32)
        radius = u1.log_().mul_(-2.0).sqrt_()
        out = torch.empty((*h.shape[:2], 2, pairs), dtype=work, device=self.device)
        torch.cos(angle, out=out[:, :, 0]).mul_(radius)
        torch.sin(angle, out=out[:, :, 1]).mul_(radius)
        out = out.reshape(*h.shape[:2], 2 * pairs)
        return (out if count == 2 * pairs else out[:, :, :count]).to(dtype)

    def uniform(self, shape: Sequence[int] = (), *, step: int = 0, stream: str = "uniform",
                dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Uniform draws in the open interval (0, 1), shaped ``[B, *shape]``: ``(k + 1/2) / 2**32``."""
        return self._draw(_UNIFORM, shape, step, stream, dtype)

    def normal(self, shape: Sequence[int] = (), *, step: int = 0, stream: str = "normal",
               dtype: torch.dtype = torch.float32) -> torch.Tensor:
        """Standard normal draws shaped ``[B, *shape]`` (Box-Muller, two normals per 64-bit hash)."""
        return self._draw(_NORMAL, shape, step, stream, dtype)

    def randint(self, high: int, *, step: int = 0, stream: str = "randint") -> torch.Tensor:
        """One integer in ``[0, high)`` per sample."""
        u = self.uniform((), step=step, stream=stream, dtype=torch.float64)
        return torch.clamp((u * high).long(), max=high - 1)


def _numel(shape: tuple[int, ...]) -> int:
    n = 1
    for s in shape:
        n *= int(s)
    return n
