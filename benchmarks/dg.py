#!/usr/bin/env python
"""Discriminator Guidance: the same EDM sampler with and without DG, on 2-D data and on MNIST.

2-D (``toy``): loads the under-trained 2-D denoiser and time-dependent discriminator dgflow ships
for each dataset (``pkg:toy/weights/dg-<dataset>-{denoiser,tdisc}.pt``, trained by the
``dgflow train diffusion`` / ``dgflow train tdisc`` commands written in ``configs/dg-<dataset>.yml``),
then samples ``--n`` points with the unguided sampler and with DG at several weights, all from the
same latents (seed 0), and scores them against 5,000 held-out real points (seed 10,000) with the
2-D metrics of the DGflow table (% high quality and modes for 25 Gaussians, KDE log-likelihoods,
sliced Wasserstein). These are the latents, held-out points and metrics of
``dgflow sample --config pkg:configs/dg-<dataset>.yml``, so its two variants print the same numbers
as the matching rows here (``tests/test_dg_readme.py`` checks the README's rows against the configs).

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

# The shipped 2-D models (package data; `dgflow.zoo.loading.resolve_path` reads pkg: paths).
TOY_DATASETS = ("25gaussians", "swissroll")
TOY_MODEL = "pkg:toy/weights/dg-{dataset}-{part}.pt"  # part: denoiser, tdisc
VARIANTS = {  # label -> guide() options
    "EDM (no DG)": None,
    "DG w=1 (Euler)": {"w_euler": 1.0, "w_heun": 0.0},
    "DG w=2 (Euler), authors' default": {"w_euler": 2.0, "w_heun": 0.0},
    "DG w=1 (Euler+Heun)": {"w_euler": 1.0, "w_heun": 1.0},
    "DG w=2 + boosting": {"w_euler": 2.0, "w_heun": 0.0, "boosting": True},
}


def toy(args: argparse.Namespace) -> list[dict]:
    from dgflow.data.toy import sample_toy
    from dgflow.metrics import toy_scores
    from dgflow.zoo import load_checkpoint
    from dgflow.zoo.loading import resolve_path

    rows = []
    for ds in args.datasets:
        den = load_checkpoint(resolve_path(TOY_MODEL.format(dataset=ds, part="denoiser")))[0]["denoiser"]
        disc = load_checkpoint(resolve_path(TOY_MODEL.format(dataset=ds, part="tdisc")))[0]["discriminator"]
        held = sample_toy(ds, 5000, seed=10_000)
        print(ds, "discriminator accuracy:", discriminator_accuracy(den, disc, held), flush=True)
        for label, opts in VARIANTS.items():
            t0 = time.process_time()
            x = guide(den, disc if opts else None, args.n, shape=(2,), seed=0, batch_size=args.n, progress=False,
                      **(opts or {})).x
            cpu = time.process_time() - t0
            metrics = {k: v for k, v in toy_scores(ds, x, held).items() if v is not None}
            rows.append({"dataset": ds, "sampler": label, **metrics, "sample_cpu_s": round(cpu, 1)})
            print(rows[-1], flush=True)
    return rows


def discriminator_accuracy(den: torch.nn.Module, disc: torch.nn.Module, real: torch.Tensor,
                           sigmas: tuple[float, ...] = (0.005, 0.05, 0.5)) -> dict[float, float]:
    """Balanced accuracy of the time-dependent discriminator at noise levels ``sigmas``: the ``real`` points
    against as many fresh unguided samples (seed 123, not the rows' latents), both noised with ``sigma``."""
    fake = guide(den, None, len(real), shape=tuple(real.shape[1:]), seed=123, batch_size=len(real),
                 progress=False).x.float()
    gen = torch.Generator().manual_seed(0)
    out = {}
    with torch.no_grad():
        for s in sigmas:
            noisy_real = real + s * torch.randn(real.shape, generator=gen)
            noisy_fake = fake + s * torch.randn(fake.shape, generator=gen)
            hits = (disc(noisy_real, s).reshape(-1) > 0).float().mean() + (disc(noisy_fake, s).reshape(-1) <= 0).float().mean()
            out[s] = round(float(hits) / 2, 3)
    return out


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
    keys = list(rows[0])
    fmt = lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)  # noqa: E731
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(fmt(r.get(k, "")) for k in keys) + " |" for r in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="what", required=True)
    t = sub.add_parser("toy")
    t.add_argument("--datasets", nargs="+", default=["25gaussians", "swissroll"], choices=TOY_DATASETS)
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
