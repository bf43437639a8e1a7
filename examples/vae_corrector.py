"""A VAE (a generator without a discriminator of its own) refined through a density-ratio corrector.

A GAN discriminator ``D_phi`` estimates ``log mu / p_phi`` for *its* generator; the corrector ``d_lambda``
estimates ``log p_phi / p_theta`` (trained to tell the GAN's samples from the VAE's, e.g. with
``dgflow train corrector``). Their logits add: ``d = d_phi + d_lambda ~ log mu / p_theta``.
Tiny random networks stand in for the trained ones. Run: ``python examples/vae_corrector.py``.
"""

import torch
from torch import nn

import dgflow

z_dim = 4
torch.manual_seed(0)
decoder = nn.Sequential(nn.Linear(z_dim, 64), nn.ReLU(), nn.Linear(64, 28 * 28), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))
gan_discriminator = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 64), nn.LeakyReLU(0.2), nn.Linear(64, 1))
corrector = nn.Sequential(nn.Flatten(), nn.Linear(28 * 28, 32), nn.LeakyReLU(0.2), nn.Linear(32, 1))

res = dgflow.refine(decoder, gan_discriminator, corrector=corrector, n=64, latent_shape=(z_dim,),
                    method="dgflow", f="KL", eta=0.1, gamma=0.01, steps=10, progress=False)
print(f"refined {tuple(res.x.shape)} VAE samples; mean d_phi + d_lambda "
      f"{res.logit_history[0].mean():.3f} -> {res.logits.mean():.3f}")
