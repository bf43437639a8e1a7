"""Discriminator Guidance inside a k-diffusion sampler: ``guided_denoiser`` is a ``model(x, sigma, **kw)``.

With k-diffusion installed (``pip install k-diffusion``) this uses ``k_diffusion.sampling.sample_heun`` /
``sample_dpmpp_2m``; otherwise the same Heun loop written out. A Heun sampler on the guided denoiser equals
``dgflow.guide(denoiser, discriminator, w_euler=w, w_heun=w)``. Tiny random networks stand in for trained
ones. Run: ``python examples/k_diffusion_guided.py``.
"""

import torch

import dgflow
from dgflow.diffusion import edm_sigmas, from_k_diffusion, guided_denoiser
from dgflow.zoo.diffusion import MLPDenoiser, MLPTimeDiscriminator

try:
    import k_diffusion as K

    sample_heun = K.sampling.sample_heun
except ImportError:
    def sample_heun(model, x, sigmas, extra_args=None, disable=None):
        """k-diffusion's sample_heun (no churn): Karras et al. 2022, Algorithm 2."""
        extra_args, s_in = extra_args or {}, x.new_ones([x.shape[0]])
        for i in range(len(sigmas) - 1):
            d = (x - model(x, sigmas[i] * s_in, **extra_args)) / sigmas[i]
            dt = sigmas[i + 1] - sigmas[i]
            if sigmas[i + 1] == 0:
                x = x + d * dt
            else:
                x_2 = x + d * dt
                d_2 = (x_2 - model(x_2, sigmas[i + 1] * s_in, **extra_args)) / sigmas[i + 1]
                x = x + (d + d_2) / 2 * dt
        return x

torch.manual_seed(0)
# a k-diffusion denoiser is called model(x, sigma, **extra); from_k_diffusion makes it a dgflow denoiser
# (here an EDM-preconditioned MLP of dgflow's zoo plays the k-diffusion model)
net = MLPDenoiser(dim=2, width=32)
denoiser = from_k_diffusion(lambda x, sigma, **extra: net(x, sigma), label_key="class_cond")
discriminator = MLPTimeDiscriminator(dim=2, width=32)          # returns the logit log(d / (1 - d))
w = 1.0
model = guided_denoiser(denoiser, discriminator, w=w).eval().requires_grad_(False)  # modules it reaches: frozen

sigmas = edm_sigmas(steps=18, sigma_min=0.002, sigma_max=80.0).float()
z = torch.randn(256, 2, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    x = sample_heun(model, z * sigmas[0], sigmas, disable=True)
ref = dgflow.guide(denoiser, discriminator, latents=z, w_euler=w, w_heun=w, steps=18, progress=False).x
print(f"k-diffusion Heun on the guided denoiser vs dgflow.guide: max |difference| {(x - ref).abs().max():.2e}")
