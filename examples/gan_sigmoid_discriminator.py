"""A DCGAN from another code base: latents [B, nz, 1, 1], BatchNorm, a discriminator ending in nn.Sigmoid.

Replace the two tiny random networks with your trained ones (``G.load_state_dict(...)``).
Run from the repository root: ``python examples/gan_sigmoid_discriminator.py``.
"""

import torch
from torch import nn

import dgflow

nz = 8
torch.manual_seed(0)
G = nn.Sequential(  # the PyTorch DCGAN example's generator, at 8 x 8
    nn.ConvTranspose2d(nz, 16, 4, 1, 0, bias=False), nn.BatchNorm2d(16), nn.ReLU(True),
    nn.ConvTranspose2d(16, 3, 4, 2, 1, bias=False), nn.Tanh())
D = nn.Sequential(  # ... and its discriminator: [B, 1, 1, 1] probabilities
    nn.Conv2d(3, 16, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, True),
    nn.Conv2d(16, 1, 4, 1, 0, bias=False), nn.Sigmoid())

# dgflow expects the logit log(D / (1 - D)): wrap a probability discriminator (passing D itself warns)
d = dgflow.from_probability(D)
res = dgflow.refine(G, d, n=64, latent_shape=(nz, 1, 1), method="dgflow", f="KL", eta=0.1, gamma=0.01, steps=10,
                    progress=False)
print(f"refined {tuple(res.x.shape)} images; mean logit {res.logit_history[0].mean():.3f} -> {res.logits.mean():.3f}")

# rejection sampling (DRS) with the same discriminator
picked = dgflow.select(G, d, 32, latent_shape=(nz, 1, 1), method="drs", progress=False)
print(f"DRS kept {tuple(picked.x.shape)} images, acceptance rate {picked.acceptance_rate:.2f}")
