"""dgflow: refine the samples of trained deep generative models with a discriminator.

    import dgflow
    result = dgflow.refine(generator, discriminator, z, method="dgflow", f="KL", eta=0.1, gamma=0.01, steps=25)
    result.x            # refined samples
    guided = dgflow.guide(denoiser, time_discriminator, n=1000, shape=(2,))   # diffusion + DG
    picked = dgflow.select(generator, discriminator, n=1000, method="drs")
"""

from .api import RefineResult, generate, normalize, refine, select
from .diffusion import GuideResult, guide
from .divergences import DIVERGENCES, FDivergence, get_divergence
from .priors import NormalPrior, Prior, UniformPrior, make_prior
from .ratio import DensityRatio, self_normalized
from .refiners import REFINERS, Refiner
from .refiners.auto import autotune, plot_pilot
from .rng import SampleNoise
from .selectors import SELECTORS, SelectResult, Selector
from .speed import SpeedOptions

from ._version import __version__

__all__ = [
    "refine", "select", "generate", "normalize", "guide", "RefineResult", "GuideResult", "SelectResult", "DensityRatio", "self_normalized",
    "FDivergence", "DIVERGENCES", "get_divergence",
    "Prior", "NormalPrior", "UniformPrior", "make_prior",
    "Refiner", "REFINERS", "autotune", "plot_pilot", "Selector", "SELECTORS", "SampleNoise", "SpeedOptions",
]
