"""A diffusers UNet2DModel + scheduler with Discriminator Guidance (needs ``pip install diffusers``).

``from_diffusers`` reads ``scheduler.alphas_cumprod`` and ``scheduler.config.prediction_type`` (epsilon,
v_prediction or sample). A tiny random UNet and time-dependent discriminator stand in for trained ones
(``UNet2DModel.from_pretrained(...)`` for yours). Run: ``python examples/diffusers_unet_dg.py``.
"""

import torch
from diffusers import DDIMScheduler, DDPMScheduler, UNet2DModel
from torch import nn

import dgflow
from dgflow.diffusion import from_diffusers, guided_denoiser, to_diffusers

torch.manual_seed(0)
unet = UNet2DModel(sample_size=8, in_channels=1, out_channels=1, layers_per_block=1, block_out_channels=(8, 16),
                   down_block_types=("DownBlock2D", "DownBlock2D"), up_block_types=("UpBlock2D", "UpBlock2D"),
                   norm_num_groups=4, num_class_embeds=10)
scheduler = DDPMScheduler(num_train_timesteps=1000, prediction_type="v_prediction")
denoiser = from_diffusers(unet, scheduler)        # D(x, sigma, labels) ~ E[x0 | x], labels -> class_labels=


class TimeDiscriminator(nn.Module):  # d(x, sigma, labels): P(real | x noised to sigma)
    def __init__(self):
        super().__init__()
        self.net = nn.Sequential(nn.Conv2d(2, 8, 3, 2, 1), nn.SiLU(), nn.Flatten(), nn.Linear(8 * 4 * 4, 1),
                                 nn.Sigmoid())

    def forward(self, x, sigma, labels=None):
        level = sigma.log().reshape(-1, 1, 1, 1).expand(-1, 1, *x.shape[2:])
        return self.net(torch.cat([x, level], 1))


discriminator = dgflow.from_probability(TimeDiscriminator())   # it outputs probabilities: use the logit
labels = torch.arange(8) % 10

# 1. dgflow's EDM Heun sampler with DG (steps and noise levels follow EDM; the UNet's discrete levels)
res = dgflow.guide(denoiser, discriminator, n=8, shape=(1, 8, 8), labels=labels, w_euler=2.0, steps=8,
                   progress=False)
print(f"dgflow.guide: {tuple(res.x.shape)} samples")

# 2. diffusers' own scheduler loop on the guided denoiser
ddim = DDIMScheduler(num_train_timesteps=1000, prediction_type="v_prediction", clip_sample=False)
ddim.set_timesteps(10)
model = to_diffusers(guided_denoiser(denoiser, discriminator, w=1.0), ddim).eval().requires_grad_(False)
x = torch.randn(8, 1, 8, 8, generator=torch.Generator().manual_seed(0))
with torch.no_grad():
    for t in ddim.timesteps:
        x = ddim.step(model(x, t, class_labels=labels), t, x).prev_sample
print(f"diffusers DDIM loop with DG: {tuple(x.shape)} samples, finite: {bool(torch.isfinite(x).all())}")
