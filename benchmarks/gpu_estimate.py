"""Estimated GPU time of each docs/gpu.md row: FLOPs counted with torch's FlopCounterMode, divided by an
assumed effective throughput. An ESTIMATE (no GPU was available), not a measurement.

    python benchmarks/gpu_estimate.py [--tflops 20]

Per training iteration: n_dis critic updates (critic forward+backward on a real and a fake batch, generator
forward) + one generator update (generator and critic forward+backward); backward counted by the FLOP
counter. Refinement: steps x (generator + critic (+ corrector) forward and backward) per sample. The WGAN-GP's gradient penalty (a double backward, about +50%) and the
data loading are not counted; small convnets rarely reach a GPU's peak, hence the modest default rate.
"""

from __future__ import annotations

import argparse

import torch
from torch.utils.flop_counter import FlopCounterMode

from dgflow.zoo import build_model


def flops(fn) -> int:
    with FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def fwd_bwd(model, inp) -> int:
    return flops(lambda: model(inp).float().sum().backward())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tflops", type=float, default=20.0, help="assumed effective TFLOP/s (default %(default)s)")
    args = ap.parse_args()
    rate = args.tflops * 1e12
    b = 64
    rows = []
    for name, g_arch, d_arch, size, gw, dw, z, its, n_dis in [
        ("SN-DCGAN CIFAR-10", "dcgan_generator", "sndcgan_discriminator", 32, 64, 64, 128, 100_000, 5),
        ("SN-DCGAN STL-10 48", "dcgan_generator", "sndcgan_discriminator", 48, 64, 64, 128, 100_000, 5),
        ("WGAN-GP CIFAR-10", "dcgan_generator", "wgangp_critic", 32, 64, 64, 128, 100_000, 5),
        ("ResNet-SNGAN CIFAR-10", "resnet_generator", "resnet_discriminator", 32, 256, 128, 128, 100_000, 5),
        ("MMD/OCF-GAN CIFAR-10", "mmd_generator", "mmd_critic", 32, 64, 64, 128, 100_000, 5),
    ]:
        g = build_model(g_arch, channels=3, image_size=size, z_dim=z, width=gw)
        d = build_model(d_arch, channels=3, image_size=size, width=dw)
        zs, xs = torch.randn(b, z), torch.randn(b, 3, size, size)
        g_f = flops(lambda: g(zs))
        d_fb = fwd_bwd(d, xs)
        gd_fb = flops(lambda: d(g(zs)).float().sum().backward())
        per_it = n_dis * (2 * d_fb + g_f) + gd_fb
        train_h = per_it * its / rate / 3600
        refine_min = 50_000 / b * 25 * gd_fb / rate / 60
        params = sum(p.numel() for p in list(g.parameters()) + list(d.parameters())) / 1e6
        rows.append((name, train_h, refine_min, params))
    print(f"assumed effective throughput: {args.tflops:g} TFLOP/s (fp32)")
    print("| model | training 100k its (h) | DGflow 50k samples x 25 steps (min) | params (M) |")
    print("|---|---:|---:|---:|")
    for name, t, r, p in rows:
        print(f"| {name} | {t:.2f} | {r:.1f} | {p:.1f} |")


if __name__ == "__main__":
    main()
