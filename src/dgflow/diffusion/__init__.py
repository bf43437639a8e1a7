"""Score-based diffusion models: EDM denoisers and sampler, with Discriminator Guidance (DG).

    import dgflow
    result = dgflow.guide(denoiser, discriminator, n=1000, shape=(2,), w_euler=2.0)
    result.x                     # guided samples; discriminator=None gives the plain EDM sampler

``sample_edm`` is EDM's ``edm_sampler``; guidance enters it as a ``Correction`` (DG: ``DGCorrection``).
"""

from .adapters import from_diffusers, from_k_diffusion, guided_denoiser, to_diffusers
from .denoisers import EDMPrecond, EpsilonVPDenoiser, from_epsilon_vp, vp_time_to_sigma
from .guidance import DG_SIGMA_MIN, DGCorrection, DiscriminatorGuidance, GuideResult, guide
from .sampler import Correction, Guidance, edm_sigmas, sample_edm

__all__ = ["EDMPrecond", "EpsilonVPDenoiser", "from_epsilon_vp", "vp_time_to_sigma", "DiscriminatorGuidance",
           "DGCorrection", "GuideResult", "guide", "edm_sigmas", "sample_edm", "Correction", "Guidance", "DG_SIGMA_MIN",
           "from_diffusers", "from_k_diffusion", "guided_denoiser", "to_diffusers"]
