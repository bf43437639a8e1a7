"""Speed options of :func:`dgflow.refine`: faster network evaluation, bounded memory, same update.

Every method spends its time in one place, :meth:`dgflow.target.Target.evaluate`
(``x = g(z)``, ``d = d(x)``, ``grad_z d``); these options change only how that is computed:

``autocast="bf16"``   the networks run under ``torch.autocast`` in bfloat16 (``"fp16"`` on GPUs);
                      positions, noise, the update and the returned ``x``, ``d``, ``grad`` stay float32.
``compile=True``      the generator and each discriminator term go through ``torch.compile``
                      (forward and backward-to-input graphs; the checks and the update stay eager);
                      a string names the backend (``"inductor"``, ``"aot_eager"``, ...).
``channels_last``     convolutional models (their weights, converted in place: the values do not
                      change) and 4-D images in NHWC memory layout.
``max_batch_size``    evaluate at most this many samples at once (micro-batches). Every sample's
                      update depends only on its own row, so results equal an unsplit batch
                      whenever the networks are batch-invariant (bit for bit; see the tests).
``memory_budget_gib`` choose ``max_batch_size`` so that one evaluation keeps about this much alive,
                      from the activation memory autograd saves per sample (measured on two probe
                      batches: the slope, so the weights do not count) times a safety factor of 2.

``autocast``, ``compile`` and ``channels_last`` change the floating-point rounding, so the numbers
agree with float32 only within a tolerance (see the tests); the micro-batch options do not.
"""

from __future__ import annotations

import weakref
from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

import torch
from torch import Tensor, nn

AUTOCAST_DTYPES = {"bf16": torch.bfloat16, "bfloat16": torch.bfloat16, "fp16": torch.float16,
                   "float16": torch.float16}
PROBE_SAFETY = 2.0  # transient buffers of the backward pass come on top of the saved activations


@dataclass(frozen=True)
class SpeedOptions:
    """Speed options of :func:`dgflow.refine` (autocast, torch.compile, channels-last, micro-batching)."""
    autocast: str | None = None
    compile: bool | str = False
    channels_last: bool = False
    max_batch_size: int | None = None
    memory_budget_gib: float | None = None

    def __post_init__(self) -> None:
        if self.autocast is not None and self.autocast not in AUTOCAST_DTYPES:
            raise ValueError(f"autocast must be one of {sorted(AUTOCAST_DTYPES)} or None, got {self.autocast!r}")
        if not isinstance(self.compile, (bool, str)):
            raise ValueError(f"compile must be true, false or a torch.compile backend name, got {self.compile!r}")
        if not isinstance(self.channels_last, bool):
            raise ValueError(f"channels_last must be true or false, got {self.channels_last!r}")
        mbs = self.max_batch_size
        if mbs is not None and (isinstance(mbs, bool) or not isinstance(mbs, int) or mbs < 1):
            raise ValueError(f"max_batch_size must be a whole number >= 1 or None, got {mbs!r}")
        gib = self.memory_budget_gib
        if gib is not None and (isinstance(gib, bool) or not isinstance(gib, (int, float)) or not gib > 0):
            raise ValueError(f"memory_budget_gib must be a number > 0 (GiB) or None, got {gib!r}")

    @property
    def dtype(self) -> torch.dtype | None:
        return None if self.autocast is None else AUTOCAST_DTYPES[self.autocast]

    @property
    def any(self) -> bool:
        return self != SpeedOptions()

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict."""
        return asdict(self)


def speed_options(value: SpeedOptions | Mapping[str, Any] | None) -> SpeedOptions:
    """``SpeedOptions`` from ``None``, a mapping of its fields, or itself (with errors that name the key)."""
    if value is None:
        return SpeedOptions()
    if isinstance(value, SpeedOptions):
        return value
    if not isinstance(value, Mapping):
        raise TypeError(f"speed must be a dict of speed options or dgflow.SpeedOptions, got {type(value).__name__}")
    valid = {f.name for f in fields(SpeedOptions)}
    unknown = sorted(set(value) - valid)
    if unknown:
        raise ValueError(f"unknown speed option(s) {unknown}; valid: {sorted(valid)}")
    return SpeedOptions(**value)


# ------------------------------------------------------------------------------------- networks

_COMPILED: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def prepare_model(model: Any, opts: SpeedOptions) -> Any:
    """The network as the options want it: channels-last weights (in place) and/or a compiled wrapper
    of the live module (cached per module, so repeated ``refine`` calls reuse one compilation and
    see weight updates). Plain functions pass through."""
    if not isinstance(model, nn.Module):
        return model
    if opts.channels_last and _has_conv(model):
        model.to(memory_format=torch.channels_last)
    if opts.compile:
        backend = "inductor" if opts.compile is True else opts.compile
        if model not in _COMPILED:
            _COMPILED[model] = {}
        if backend not in _COMPILED[model]:
            _COMPILED[model][backend] = torch.compile(Detached(model), backend=backend)
        model = _COMPILED[model][backend]
    return model


class Detached(nn.Module):
    """``module`` called with its parameters detached. Refinement differentiates with respect to the
    input only; compiled, the backward graph then holds no parameter gradients (AOTAutograd would
    otherwise build them for every parameter that requires grad, which eager autograd skips)."""

    def __init__(self, module: nn.Module):
        super().__init__()
        self.module = module

    def forward(self, *args: Any) -> Any:
        params = {name: p.detach() for name, p in self.module.named_parameters()}
        return torch.func.functional_call(self.module, params, args)


def _has_conv(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.conv._ConvNd) for m in model.modules())


def to_layout(x: Tensor, opts: SpeedOptions | None) -> Tensor:
    """``x`` in channels-last memory format when the options ask for it (4-D images only)."""
    if opts is not None and opts.channels_last and x.ndim == 4:
        return x.contiguous(memory_format=torch.channels_last)
    return x


# --------------------------------------------------------------------------------------- memory


def saved_bytes_per_sample(evaluate: Any, z: Tensor) -> float:
    """Bytes autograd keeps per sample in ``evaluate(z_batch)`` (forward + backward to ``z``).

    Measured with ``saved_tensors_hooks`` on the first ``k`` and all ``2k`` rows of ``z`` (at least
    2); the difference divided by ``k`` counts activations, not the weights (saved once per batch).
    """
    k = len(z) // 2
    if k < 1:
        raise ValueError("the memory probe needs at least 2 rows")
    totals = []
    for rows in (k, 2 * k):
        total = 0

        def pack(t: Tensor) -> Tensor:
            nonlocal total
            total += t.numel() * t.element_size()
            return t

        with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
            evaluate(z[:rows])
        totals.append(total)
    return max((totals[1] - totals[0]) / k, 1.0)


def batch_for_budget(evaluate: Any, z: Tensor, budget_gib: float) -> int:
    """The largest micro-batch whose forward + backward should fit in ``budget_gib`` GiB."""
    per_sample = PROBE_SAFETY * saved_bytes_per_sample(evaluate, z)
    return max(1, int(budget_gib * 2**30 // per_sample))
