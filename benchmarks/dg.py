#!/usr/bin/env python
"""Discriminator Guidance: the same EDM sampler with and without DG, on 2-D data and on MNIST.

2-D (``toy``): trains an under-trained MLP denoiser (EDM loss) and a time-dependent MLP
discriminator (BCE, noised real vs noised generated), then samples ``--n`` points with the
unguided sampler and with DG at several weights, all from the same latents (seed 0), and
scores them against held-out real points with the 2-D metrics of the DGflow table
(% high quality and modes for 25 Gaussians, KDE log-likelihoods, sliced Wasserstein).

MNIST (``mnist``): given trained checkpoints (``dgflow train diffusion`` / ``dgflow train tdisc``),
samples ``--n`` images unguided and guided (same latents) and reports classifier FID / IS
(the project's classifier, against the 10,000 test images) on all of them and Inception FID
on the first ``--inception-n`` (against as many test images; FID at small counts is biased
upwards, so compare the rows with each other, not with published numbers).

    python benchmarks/dg.py toy --datasets 25gaussians swissroll
    python benchmarks/dg.py mnist --denoiser runs/dg/mnist/denoiser/checkpoint.pt \\
        --disc runs/dg/mnist/tdisc/checkpoint.pt --classifier runs/mnist/classifier/checkpoint.pt \\
        --data ../shared/data --n 2000 --inception-n 500
"""

from __future__ import annotations

import argparse
import time

import torch

from dgflow import io
from dgflow.diffusion import guide

# Denoiser iterations (the loss has plateaued, the samples are still blurred), discriminator
# iterations, and random Fourier input features of the discriminator: the 25-Gaussians modes are
# 0.035 wide in its input units, which a plain MLP does not resolve in a few thousand steps
# (measured accuracy at sigma = 0.005: 0.55 plain, 0.97 with 64 features); on the Swiss roll
# the same features make the guidance gradient noisy (KDE gen|real -8.1 -> -9.7 at w = 1), so none.
TOY_SETTINGS = {
    "25gaussians": {"denoiser_iterations": 8000, "disc_iterations": 3000, "fourier": 64},
    "swissroll": {"denoiser_iterations": 2000, "disc_iterations": 4000, "fourier": 0},
}
VARIANTS = {  # label -> guide() options
    "EDM (no DG)": None,
    "DG w=1 (Euler)": {"w_euler": 1.0, "w_heun": 0.0},
    "DG w=2 (Euler), authors' default": {"w_euler": 2.0, "w_heun": 0.0},
    "DG w=1 (Euler+Heun)": {"w_euler": 1.0, "w_heun": 1.0},
    "DG w=2 + boosting": {"w_euler": 2.0, "w_heun": 0.0, "boosting": True},
}


def toy(args: argparse.Namespace) -> list[dict]:
    from dgflow.metrics import toy_scores
    from dgflow.data.toy import sample_toy
    from dgflow.training.diffusion import train_diffusion, train_time_discriminator
    from dgflow.zoo import build_model

    rows = []
    for ds in args.datasets:
        s = TOY_SETTINGS[ds]
        torch.manual_seed(0)
        den = build_model("mlp_denoiser", dim=2, width=128)
        t0 = time.process_time()
        train_diffusion(den, sample_toy(ds, 100_000, seed=0), iterations=s["denoiser_iterations"], batch_size=128,
                        progress=False)
        den.eval()
        fake = guide(den, None, 10_000, shape=(2,), seed=7919, batch_size=10_000, progress=False).x
        torch.manual_seed(0)
        disc = build_model("mlp_time_discriminator", dim=2, width=128, fourier=s["fourier"], fourier_scale=5.0)
        train_time_discriminator(disc, sample_toy(ds, 10_000, seed=1), fake, iterations=s["disc_iterations"],
                                 batch_size=256, lr=1e-3, progress=False)
        train_cpu = time.process_time() - t0
        held = sample_toy(ds, 5000, seed=10_000)
        for label, opts in VARIANTS.items():
            t0 = time.process_time()
            x = guide(den, disc if opts else None, args.n, shape=(2,), seed=0, batch_size=args.n, progress=False,
                      **(opts or {})).x
            cpu = time.process_time() - t0
            metrics = {k: v for k, v in toy_scores(ds, x, held).items() if v is not None}
            rows.append({"dataset": ds, "sampler": label, **metrics, "sample_cpu_s": round(cpu, 1),
                         "train_cpu_s": round(train_cpu, 1)})
            print(rows[-1], flush=True)
    return rows


def mnist(args: argparse.Namespace) -> list[dict]:
    from dgflow.data import load_mnist
    from dgflow.metrics import (ClassifierFeatures, InceptionFeatures, compute_stats, extract_features,
                                fid_from_stats, inception_score)
    from dgflow.zoo import load_checkpoint

    den = load_checkpoint(args.denoiser)[0]["denoiser"]
    disc = load_checkpoint(args.disc)[0]["discriminator"]
    clf = ClassifierFeatures(load_checkpoint(args.classifier)[0]["classifier"])
    real = load_mnist(args.data, "test")[0]
    real_clf = compute_stats(extract_features(clf, real, 500))
    inception = InceptionFeatures() if args.inception_n else None
    real_inc = compute_stats(extract_features(inception, real[:args.inception_n], 50)) if inception else None
    variants = {} if args.no_base else {"EDM (no DG)": None}
    variants.update({f"DG w={w:g} (Euler)": {"w_euler": w, "w_heun": 0.0} for w in args.weights})
    if args.boosting:
        variants["DG w=2 + boosting"] = {"w_euler": 2.0, "w_heun": 0.0, "boosting": True}
    rows = []
    for label, opts in variants.items():
        t0 = time.process_time()
        x = guide(den, disc if opts else None, args.n, shape=(1, 28, 28), seed=0, batch_size=500,
                  progress=not args.quiet, **(opts or {})).x
        cpu = time.process_time() - t0
        feats = extract_features(clf, x, 500)
        is_mean, _ = inception_score(torch.cat([clf.logits(c) for c in x.split(500)]), splits=10)
        row = {"sampler": label, "n": args.n, "fid_classifier": fid_from_stats(*compute_stats(feats), *real_clf),
               "is_classifier": is_mean, "sample_cpu_s": round(cpu, 1)}
        if inception:
            row[f"fid_inception_{args.inception_n}"] = fid_from_stats(
                *compute_stats(extract_features(inception, x[:args.inception_n], 50)), *real_inc)
        if args.grids:
            from pathlib import Path

            import numpy as np

            from dgflow.plots import save_grid, to_uint8

            stem = f"{label.split()[0].lower()}-{label.split()[1] if opts else 'base'}"
            save_grid(x[:64], Path(args.grids) / f"{stem}.png")
            def write(tmp: str, images: np.ndarray = to_uint8(x)) -> None:
                with open(tmp, "wb") as fh:
                    np.savez(fh, x=images)

            io.write_with(Path(args.grids) / f"{stem}.npz", write)
        rows.append(row)
        print(row, flush=True)
    return rows


def table(rows: list[dict]) -> str:
    keys = [k for k in rows[0] if k not in ("train_cpu_s",)]
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("toy")
    t.add_argument("--datasets", nargs="+", default=["25gaussians", "swissroll"], choices=sorted(TOY_SETTINGS))
    t.add_argument("--n", type=int, default=5000)
    m = sub.add_parser("mnist")
    m.add_argument("--denoiser", required=True)
    m.add_argument("--disc", required=True)
    m.add_argument("--classifier", required=True)
    m.add_argument("--data", required=True)
    m.add_argument("--n", type=int, default=2000)
    m.add_argument("--inception-n", type=int, default=500, help="samples for Inception FID (0: skip)")
    m.add_argument("--weights", type=float, nargs="*", default=[1.0, 2.0], help="Euler-stage DG weights (rows)")
    m.add_argument("--boosting", action="store_true")
    m.add_argument("--no-base", action="store_true", help="skip the unguided row (e.g. to run rows in parallel)")
    m.add_argument("--grids", default=None, help="folder for 8x8 sample grids and the samples (npz)")
    m.add_argument("--quiet", action="store_true")
    for p in (t, m):
        p.add_argument("--threads", type=int, default=1)
        p.add_argument("--json", default=None)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rows = toy(args) if args.what == "toy" else mnist(args)
    print()
    print(table(rows))
    if args.json:
        io.write_json(args.json, rows)


if __name__ == "__main__":
    main()
