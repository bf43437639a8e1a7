"""Bring your own model: find the networks behind the callables a user passes.

:func:`dgflow.refine`, :func:`dgflow.select`, :func:`dgflow.guide` and :func:`dgflow.autotune` put
every ``nn.Module`` they can reach in eval mode and freeze its parameters for the call
(:func:`dgflow.target.eval_mode`). **Reachable** from an object are:

* the object itself, when it is an ``nn.Module`` (with all its submodules);
* the modules registered in a :func:`wrap` (``dgflow.wrap(lambda x: torch.logit(D(x)), D)``);
* for a function or lambda: the modules in its closure cells and the module-level (global)
  names its code uses; for a bound method: its ``__self__``; for ``functools.partial``: its
  function and arguments; for any other callable object: the modules among its attributes;
  lists, tuples and dicts (of at most 64 items) of these are searched too, to a depth of 4.

A callable with no reachable module (a closed-form logit, or a network hidden somewhere the
search does not look) gets a one-time warning: eval mode cannot be applied to it, so dropout
and BatchNorm would stay in training mode. ``dgflow.wrap(fn, *modules)`` makes the networks visible.
"""

from __future__ import annotations

import functools
import inspect
import os
import sys
import types
import warnings
from collections.abc import Callable, Iterable
from typing import Any

import torch
from torch import Tensor, nn

_MAX_DEPTH = 4
_MAX_ITEMS = 64  # containers searched: lists, tuples and dicts of at most this many items
_warned_codes: set[Any] = set()


class Wrapped(nn.Module):
    """``fn`` as an ``nn.Module`` with ``modules`` registered (see :func:`wrap`)."""

    def __init__(self, fn: Callable[..., Any], *modules: nn.Module):
        super().__init__()
        if not callable(fn):
            raise TypeError(f"dgflow.wrap needs a callable first, got {type(fn).__name__}")
        for k, m in enumerate(modules):
            if not isinstance(m, nn.Module):
                raise TypeError(f"dgflow.wrap(fn, *modules): argument {k + 2} is a {type(m).__name__}, "
                                "not an nn.Module")
        self.fn = fn
        self.wrapped = nn.ModuleList(modules)

    def forward(self, *args: Any, **kwargs: Any) -> Any:
        return self.fn(*args, **kwargs)

    def extra_repr(self) -> str:
        return f"fn={getattr(self.fn, '__qualname__', type(self.fn).__name__)}"


def wrap(fn: Callable[..., Any], *modules: nn.Module) -> Wrapped:
    """``fn`` as an ``nn.Module`` that holds ``modules``: dgflow can then switch them to eval mode,
    freeze them and find their device.

        D_logit = dgflow.wrap(lambda x: torch.logit(D(x)), D)
        denoiser = dgflow.wrap(lambda x, t: unet(x, t).sample, unet)
    """
    return Wrapped(fn, *modules)


def reachable_modules(obj: Any) -> list[nn.Module]:
    """The ``nn.Module`` objects reachable from ``obj`` (see the module docstring), without duplicates."""
    found: dict[int, nn.Module] = {}
    _search(obj, found, set(), 0)
    return list(found.values())


def _search(obj: Any, found: dict[int, nn.Module], seen: set[int], depth: int) -> None:
    if obj is None or depth > _MAX_DEPTH or id(obj) in seen or isinstance(obj, (Tensor, str, bytes, int, float)):
        return
    seen.add(id(obj))
    if isinstance(obj, nn.Module):
        found.setdefault(id(obj), obj)
        for sub in obj.modules():  # plain callables stored on a module (e.g. a lambda attribute)
            for value in vars(sub).values():
                if not isinstance(value, (nn.Module, type)) and (callable(value) or isinstance(value, (list, tuple, dict))):
                    _search(value, found, seen, depth + 1)
        return
    if isinstance(obj, (list, tuple, set, frozenset, dict)):
        if len(obj) > _MAX_ITEMS:  # a data list, not a few networks
            return
        children: Iterable[Any] = obj.values() if isinstance(obj, dict) else obj
    elif isinstance(obj, functools.partial):
        children = (obj.func, *obj.args, *obj.keywords.values())
    elif inspect.ismethod(obj):
        children = (obj.__self__, obj.__func__)
    elif isinstance(obj, types.FunctionType):
        children = [*_closure_values(obj), *_globals_used(obj)]
    elif isinstance(obj, (types.BuiltinFunctionType, types.ModuleType, type)):
        return
    elif callable(obj) and hasattr(obj, "__dict__"):
        children = vars(obj).values()
    else:
        return
    for child in children:
        _search(child, found, seen, depth + 1)


def _closure_values(fn: types.FunctionType) -> list[Any]:
    values = []
    for cell in fn.__closure__ or ():
        try:
            values.append(cell.cell_contents)
        except ValueError:  # an empty cell (a name assigned later)
            pass
    return values


def _globals_used(fn: types.FunctionType) -> list[Any]:
    """Module-level objects the function's code (and code nested in it) refers to by name."""
    names: set[str] = set()
    stack = [fn.__code__]
    while stack:
        code = stack.pop()
        names.update(code.co_names)
        stack.extend(c for c in code.co_consts if isinstance(c, types.CodeType))
    g = fn.__globals__
    return [g[n] for n in sorted(names) if n in g and isinstance(g[n], (nn.Module, list, tuple, dict))]


def modules_of(obj: Any, role: str = "a model") -> list[nn.Module]:
    """:func:`reachable_modules`, warning once per function when a callable has none."""
    modules = reachable_modules(obj)
    if not modules and callable(obj):
        key = getattr(obj, "__code__", None) or getattr(getattr(obj, "__func__", None), "__code__", None) or type(obj)
        if key not in _warned_codes:
            _warned_codes.add(key)
            name = getattr(obj, "__qualname__", type(obj).__name__)
            warnings.warn(f"dgflow cannot reach an nn.Module inside {role} ({name}): eval mode and frozen weights "
                          "cannot be applied, so dropout or BatchNorm in a network it calls would stay in "
                          "training mode. If it calls a network, pass dgflow.wrap(fn, network) instead "
                          "(a closed-form function needs nothing).", UserWarning, stacklevel=user_stacklevel())
    return modules


def user_stacklevel() -> int:
    """The ``stacklevel`` that points a warning at the first caller outside dgflow (and contextlib)."""
    package = os.path.dirname(os.path.abspath(__file__))
    frame, level = sys._getframe(1), 1
    while frame is not None and (frame.f_code.co_filename.startswith(package)
                                 or frame.f_code.co_filename.endswith(("contextlib.py", "torch/nn/modules/module.py"))):
        frame, level = frame.f_back, level + 1
    return level


def first_device(*objs: Any) -> torch.device | None:
    """The device of the first parameter or buffer of a module reachable from ``objs``."""
    for obj in objs:
        for m in reachable_modules(obj):
            for t in (*m.parameters(), *m.buffers()):
                return t.device
    return None


class WSpace(nn.Module):
    """A StyleGAN generator refined in its intermediate latent space W (see :func:`w_space`).

    ``forward(u) = G.synthesis(broadcast(w_mean + w_std * u))``: the standard-normal latent ``u`` is
    ``w`` standardised by the mean and standard deviation of ``G.mapping``'s outputs, so dgflow's
    normal prior is the Gaussian fit ``N(w_mean, diag(w_std^2))`` of W's law (exact when W is Gaussian).
    """

    def __init__(self, G: nn.Module, n: int = 10_000, seed: int = 0, c: Tensor | None = None,
                 **synthesis_kwargs: Any):
        super().__init__()
        for name in ("mapping", "synthesis"):
            if not callable(getattr(G, name, None)):
                raise TypeError(f"w_space needs a StyleGAN-style generator with G.mapping and G.synthesis; "
                                f"{type(G).__name__} has no {name!r}")
        self.G = G
        self.synthesis_kwargs = synthesis_kwargs
        z_dim = getattr(G, "z_dim", None)
        if z_dim is None:
            raise TypeError("w_space needs G.z_dim (the size of the mapping network's input z)")
        with torch.no_grad():
            device = first_device(G) or torch.device("cpu")
            z = torch.randn(n, z_dim, generator=torch.Generator().manual_seed(seed)).to(device)
            ws = G.mapping(z, None if c is None else c.expand(n, *c.shape[1:]))
        if ws.ndim != 3:
            raise ValueError(f"G.mapping returned shape {tuple(ws.shape)}; expected [B, num_ws, w_dim]")
        self.num_ws = ws.shape[1]
        w = ws[:, 0].double()
        self.register_buffer("w_mean", w.mean(0).float())
        self.register_buffer("w_std", w.std(0).clamp_min(1e-8).float())
        self.c = c

    def forward(self, u: Tensor) -> Tensor:
        w = self.w_mean + self.w_std * u
        return self.G.synthesis(w[:, None, :].expand(-1, self.num_ws, -1), **self.synthesis_kwargs)

    def latents(self, z: Tensor) -> Tensor:
        """The ``u`` of ``G``'s own samples ``G.mapping(z)``: refinement starts where ``G(z)`` is."""
        with torch.no_grad():
            c = None if self.c is None else self.c.expand(len(z), *self.c.shape[1:])
            return (self.G.mapping(z, c)[:, 0] - self.w_mean) / self.w_std


def w_space(G: nn.Module, n: int = 10_000, seed: int = 0, c: Tensor | None = None, **synthesis_kwargs: Any) -> WSpace:
    """Refine a StyleGAN (``G.mapping(z, c) -> [B, num_ws, w_dim]``, ``G.synthesis(ws)``) in W instead of Z::

        W = dgflow.w_space(G, noise_mode="const")         # fits w's mean / std on n mapped latents
        res = dgflow.refine(W, D, z=W.latents(z))         # starts at G's samples; res.x are images

    ``c``: a fixed class (one row, e.g. one-hot ``[1, c_dim]``) for a conditional StyleGAN.
    ``synthesis_kwargs`` go to ``G.synthesis`` (StyleGAN2: ``noise_mode="const"`` so the per-layer
    noise does not change between steps). Refining in Z needs no helper:
    ``dgflow.refine(dgflow.wrap(lambda z: G(z, None, noise_mode="const"), G), D, n=..., latent_shape=(G.z_dim,))``.
    """
    return WSpace(G, n, seed, c, **synthesis_kwargs)
