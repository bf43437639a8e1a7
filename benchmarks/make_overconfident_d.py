"""A deliberately over-confident discriminator for benchmarks/auto_step.py: continue training only the
discriminator of a GAN (non-saturating loss, Adam 2e-4, betas (0, 0.9), batch 64) against its frozen
generator, on a small subset (5,000) of the MNIST training images, for many iterations.

    python benchmarks/make_overconfident_d.py runs/mnist/ns/checkpoint.pt runs/mnist/oc/checkpoint.pt \\
        --data ../shared/data --iterations 3000
"""

import argparse
import time

import torch
import torch.nn.functional as F

from dgflow.data import load_mnist
from dgflow.zoo import load_checkpoint, save_checkpoint


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("gan", help="dgflow checkpoint with a generator and a discriminator")
    parser.add_argument("out", help="output checkpoint (the same generator, the over-trained discriminator)")
    parser.add_argument("--data", default="../shared/data")
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--subset", type=int, default=5000)
    args = parser.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(0)
    models, _ = load_checkpoint(args.gan)
    records = torch.load(args.gan, map_location="cpu", weights_only=True)["models"]  # tensors and plain values only
    g, d = models["generator"].eval(), models["discriminator"].train()
    x = load_mnist(args.data, split="train")[0][:args.subset]
    opt = torch.optim.Adam(d.parameters(), lr=2e-4, betas=(0.0, 0.9))
    start = time.perf_counter()
    for it in range(1, args.iterations + 1):
        real = x[torch.randint(len(x), (64,))]
        with torch.no_grad():
            fake = g(torch.randn(64, g.z_dim))
        loss = F.softplus(-d(real)).mean() + F.softplus(d(fake)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if it % 500 == 0:
            print(f"{it}: loss_d {loss.item():.4f} ({time.perf_counter() - start:.0f} s)", flush=True)
    d.eval()
    save_checkpoint(args.out, {role: (records[role]["arch"], records[role]["config"], m)
                               for role, m in (("generator", g), ("discriminator", d))},
                    {"note": f"{args.gan} with its discriminator trained {args.iterations} more iterations on "
                             f"{args.subset} training images against the frozen generator"})


if __name__ == "__main__":
    main()
