"""Score-based diffusion models: EDM denoisers and sampler, with Discriminator Guidance (DG).

    import dgflow
    result = dgflow.guide(denoiser, discriminator, n=1000, shape=(2,), w_euler=2.0)
    result.x                     # guided samples; discriminator=None gives the plain EDM sampler
"""

from .adapters import from_diffusers, from_k_diffusion, guided_denoiser, to_diffusers
from .denoisers import EDMPrecond, EpsilonVPDenoiser, from_epsilon_vp, vp_time_to_sigma
from .guidance import DG_SIGMA_MIN, DiscriminatorGuidance, GuideResult, guide
from .sampler import edm_sigmas, sample_edm

__all__ = ["EDMPrecond", "EpsilonVPDenoiser", "from_epsilon_vp", "vp_time_to_sigma", "DiscriminatorGuidance",
           "GuideResult", "guide", "edm_sigmas", "sample_edm", "DG_SIGMA_MIN",
           "from_diffusers", "from_k_diffusion", "guided_denoiser", "to_diffusers"]
