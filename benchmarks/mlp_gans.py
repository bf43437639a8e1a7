"""Three MNIST MLP GANs in the style of models published elsewhere, for benchmarks/auto_step.py (CPU, minutes).

* ``uniform``: z ~ U(-1, 1)^100, G 100-256-512-784 (tanh), D 784-512-256-1 returning a **logit**,
  non-saturating loss (Goodfellow et al. 2014's MLP GAN).
* ``sigmoid``: z ~ N(0, I_64), the same shapes, but D ends in a **sigmoid** (it returns a probability;
  trained with BCE on probabilities, as many published GANs are). Refine it through ``dgflow.from_probability``.
* ``oc``: the ``uniform`` generator with its discriminator trained on alone against the frozen
  generator on 5,000 training images for many more iterations (an over-confident D).

    python benchmarks/mlp_gans.py runs/mnist/mlp --data DATA

Weights are saved as plain state dicts (``torch.load(..., weights_only=True)``); :func:`load` rebuilds them.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

Z_DIMS = {"uniform": 100, "sigmoid": 64}


def generator(z_dim: int) -> nn.Module:
    return nn.Sequential(nn.Linear(z_dim, 256), nn.LeakyReLU(0.2), nn.Linear(256, 512), nn.LeakyReLU(0.2),
                         nn.Linear(512, 784), nn.Tanh(), nn.Unflatten(1, (1, 28, 28)))


def discriminator(sigmoid: bool) -> nn.Module:
    layers = [nn.Flatten(), nn.Linear(784, 512), nn.LeakyReLU(0.2), nn.Linear(512, 256), nn.LeakyReLU(0.2),
              nn.Linear(256, 1), nn.Flatten(0)]
    return nn.Sequential(*layers, nn.Sigmoid()) if sigmoid else nn.Sequential(*layers)


def draw_z(kind: str, n: int) -> torch.Tensor:
    z = torch.rand(n, Z_DIMS[kind]) * 2 - 1 if kind == "uniform" else torch.randn(n, Z_DIMS[kind])
    return z


def train(kind: str, x: torch.Tensor, iterations: int, batch: int = 64) -> tuple[nn.Module, nn.Module]:
    g, d = generator(Z_DIMS[kind]), discriminator(kind == "sigmoid")
    opt_g = torch.optim.Adam(g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    ones, zeros = torch.ones(batch), torch.zeros(batch)
    for it in range(iterations):
        real, fake = x[torch.randint(len(x), (batch,))], g(draw_z(kind, batch))
        if kind == "sigmoid":
            loss_d = F.binary_cross_entropy(d(real), ones) + F.binary_cross_entropy(d(fake.detach()), zeros)
        else:
            loss_d = F.softplus(-d(real)).mean() + F.softplus(d(fake.detach())).mean()
        opt_d.zero_grad()
        loss_d.backward()
        opt_d.step()
        out = d(fake)
        loss_g = F.binary_cross_entropy(out, ones) if kind == "sigmoid" else F.softplus(-out).mean()
        opt_g.zero_grad()
        loss_g.backward()
        opt_g.step()
        if (it + 1) % 500 == 0:
            print(f"{kind} {it + 1}: loss_d {loss_d.item():.3f} loss_g {loss_g.item():.3f}", flush=True)
    return g.eval(), d.eval()


def overtrain(g: nn.Module, d: nn.Module, x: torch.Tensor, iterations: int, batch: int = 64) -> nn.Module:
    """Train a copy of the logit discriminator ``d`` alone against the frozen ``g`` (over-confident)."""
    import copy

    d = copy.deepcopy(d).train()
    opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))
    for _ in range(iterations):
        with torch.no_grad():
            fake = g(draw_z("uniform", batch))
        loss = F.softplus(-d(x[torch.randint(len(x), (batch,))])).mean() + F.softplus(d(fake)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return d.eval()


def load(root: str | Path, kind: str) -> tuple[nn.Module, nn.Module]:
    """(generator, discriminator) of ``kind`` in ``uniform``, ``sigmoid``, ``oc`` (D of ``sigmoid``: a probability)."""
    gkind = "uniform" if kind == "oc" else kind
    g, d = generator(Z_DIMS[gkind]), discriminator(kind == "sigmoid")
    g.load_state_dict(torch.load(Path(root) / f"{gkind}_g.pt", weights_only=True))
    d.load_state_dict(torch.load(Path(root) / f"{kind}_d.pt", weights_only=True))
    return g.eval(), d.eval()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("out")
    parser.add_argument("--data", required=True, help="folder holding mnist.npz")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--oc-iterations", type=int, default=3000)
    args = parser.parse_args()
    from dgflow.data import load_mnist

    torch.set_num_threads(1)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    x = load_mnist(args.data, split="train")[0]
    for kind in ("uniform", "sigmoid"):
        torch.manual_seed(0)
        start = time.process_time()
        g, d = train(kind, x, args.iterations)
        torch.save(g.state_dict(), out / f"{kind}_g.pt")
        torch.save(d.state_dict(), out / f"{kind}_d.pt")
        print(f"{kind}: {time.process_time() - start:.0f} CPU s", flush=True)
    torch.manual_seed(1)
    g, d = load(out, "uniform")
    start = time.process_time()
    torch.save(overtrain(g, d, x[:5000], args.oc_iterations).state_dict(), out / "oc_d.pt")
    print(f"oc: {time.process_time() - start:.0f} CPU s", flush=True)


if __name__ == "__main__":
    main()
