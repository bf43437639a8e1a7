"""Step-size sweep on the 2-D benchmarks: the evidence behind the main job's settings.

For each dataset and each refinement method, runs a small grid of step sizes / step counts
on the shipped WGAN-GP models and prints the metrics, so the choice in
``dgflow.experiments.toy2d.TOY_SETTINGS`` can be checked (or redone for other models).

    python benchmarks/toy2d_sweep.py                    # both datasets, all grids
    python benchmarks/toy2d_sweep.py --dataset 25gaussians --method dgflow
"""

from __future__ import annotations

import argparse
import itertools
import time

import torch

from dgflow import generate, refine
from dgflow.experiments.toy2d import load_models
from dgflow.metrics import toy_scores
from dgflow.data.toy import sample_toy
from dgflow.zoo.toy import Z_DIM

GRIDS = {
    "dgflow": {"eta": [0.003, 0.01, 0.03, 0.1], "gamma": [0.01], "steps": [25], "f": ["KL", "JS", "logD"]},  # on the self-normalised critic,
    "ddls": {"eps": [0.0003, 0.001, 0.003, 0.01], "steps": [100]},
    "dot": {"space": ["data"], "lr": [0.001, 0.01, 0.1], "steps": [10, 100]},
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--dataset", nargs="+", default=["25gaussians", "swissroll"])
    parser.add_argument("--method", nargs="+", default=list(GRIDS))
    parser.add_argument("--n", type=int, default=2000)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    torch.set_num_threads(torch.get_num_threads())
    print("| dataset | method | options | % HQ | modes | KDE real|gen | KDE gen|real | sliced W1 | s |")
    print("|---|---|---|---:|---:|---:|---:|---:|---:|")
    for dataset in args.dataset:
        generator, critic, _ = load_models(dataset, seed=args.seed)
        real = sample_toy(dataset, args.n, seed=10_000 + args.seed)
        _print_row(dataset, "base", "", generate(generator, args.n, latent_shape=(Z_DIM,), seed=args.seed)[1], real, 0.0)
        for method in args.method:
            grid = GRIDS[method]
            for values in itertools.product(*grid.values()):
                options = dict(zip(grid, values))
                start = time.perf_counter()
                x = refine(generator, critic, n=args.n, latent_shape=(Z_DIM,), method=method, seed=args.seed,
                           batch_size=args.n, save_interval=None, progress=False, **options).x
                opts = ", ".join(f"{k}={v}" for k, v in options.items())
                _print_row(dataset, method, opts, x, real, time.perf_counter() - start)


def _print_row(dataset: str, method: str, opts: str, x: torch.Tensor, real: torch.Tensor, seconds: float) -> None:
    row = toy_scores(dataset, x, real)
    hq = "–" if row["high_quality_pct"] is None else f"{row['high_quality_pct']:.1f}"
    modes = "–" if row["modes"] is None else row["modes"]
    print(f"| {dataset} | {method} | {opts} | {hq} | {modes} | {row['kde_real_under_gen']:.2f} | "
          f"{row['kde_gen_under_real']:.2f} | {row['swd']:.4f} | {seconds:.1f} |", flush=True)


if __name__ == "__main__":
    main()
