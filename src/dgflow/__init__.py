"""dgflow: refine the samples of trained deep generative models with a discriminator.

    import dgflow
    result = dgflow.refine(generator, discriminator, z, method="dgflow", f="KL", eta=0.1, gamma=0.01, steps=25)
    result.x            # refined samples
    guided = dgflow.guide(denoiser, time_discriminator, n=1000, shape=(2,))   # diffusion + DG
    picked = dgflow.select(generator, discriminator, n=1000, method="drs")

The public names are imported on first use (PEP 562), so ``import dgflow`` and ``dgflow --help``
do not pay for torch and the plotting and metrics libraries until something needs them.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

from ._version import __version__ as __version__  # re-exported: dgflow.__version__

_EXPORTS = {
    "api": ["refine", "select", "autotune", "generate", "normalize", "RefineResult"],
    "diffusion": ["guide", "GuideResult"],
    "divergences": ["FDivergence", "DIVERGENCES", "get_divergence"],
    "priors": ["Prior", "NormalPrior", "UniformPrior", "make_prior"],
    "ratio": ["DensityRatio", "self_normalized", "from_probability"],
    "byo": ["wrap", "w_space"],
    "refiners": ["Refiner", "REFINERS"],
    "rng": ["SampleNoise"],
    "selectors": ["Selector", "SELECTORS", "SelectResult"],
    "speed": ["SpeedOptions"],
    "plots": ["plot_pilot"],
}
_WHERE = {name: module for module, names in _EXPORTS.items() for name in names}

__all__ = [
    "refine", "select", "generate", "normalize", "guide", "RefineResult", "GuideResult", "SelectResult", "DensityRatio", "self_normalized",
    "FDivergence", "DIVERGENCES", "get_divergence",
    "Prior", "NormalPrior", "UniformPrior", "make_prior",
    "Refiner", "REFINERS", "autotune", "plot_pilot", "Selector", "SELECTORS", "SampleNoise", "SpeedOptions",
    "from_probability", "wrap", "w_space",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        try:  # a submodule, e.g. dgflow.zoo after a plain `import dgflow`
            return importlib.import_module(f"{__name__}.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}":
                raise
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
    value = getattr(importlib.import_module(f"{__name__}.{module}"), name)
    globals()[name] = value  # later lookups skip __getattr__
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))


if TYPE_CHECKING:  # static checkers and IDEs see the eager imports
    from .api import RefineResult, autotune, generate, normalize, refine, select
    from .diffusion import GuideResult, guide
    from .divergences import DIVERGENCES, FDivergence, get_divergence
    from .priors import NormalPrior, Prior, UniformPrior, make_prior
    from .byo import w_space, wrap
    from .ratio import DensityRatio, from_probability, self_normalized
    from .refiners import REFINERS, Refiner
    from .rng import SampleNoise
    from .selectors import SELECTORS, SelectResult, Selector
    from .speed import SpeedOptions
    from .plots import plot_pilot
