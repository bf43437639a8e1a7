"""Text benchmark: JS-4 / JS-6 of a character-level WGAN-GP before and after refinement.

Trains (or loads) the CPU-scale text GAN of ``dgflow.experiments.text`` (pydoc corpus,
32 channels, 1,200 iterations: about 6-7 minutes on one core), refines 640 latents per seed
with DGflow (KL, JS, logD), DDLS and DOT, and prints the table (bits, mean +- sd over seeds)
and a few sentences before and after refinement.

    python benchmarks/text_js.py                                  # seeds 0 1 2, runs/text/
    python benchmarks/text_js.py --checkpoint my-textgan.pt --seeds 0
    python benchmarks/text_js.py --sweep                          # the step-size grid, on seed 100
"""

from __future__ import annotations

import argparse
import time

import torch

from dgflow.experiments.text import (DGFLOW_ETA, TEXT_SETTINGS, format_samples, format_table, run_text,
                                     text_methods)
from dgflow.experiments.toy2d import MethodRun

SWEEP_SEED = 100  # the grid is scored on other latents than the reported seeds
SWEEP = {
    "dgflow": [{"f": f, "eta": eta, **TEXT_SETTINGS["dgflow"]} for f in ("KL", "JS", "logD")
               for eta in (0.01, 0.03, 0.1, 0.3)],
    "ddls": [{"eps": eps, "steps": 100} for eps in (0.001, 0.003, 0.01, 0.03)],
    "dot": [{"lr": lr, "steps": 100, "optimizer": "sgd"} for lr in (0.003, 0.01, 0.03, 0.1)],
}


def sweep_runs() -> list[MethodRun]:
    runs = [MethodRun("base", "base")]
    for method, grid in SWEEP.items():
        for options in grid:
            label = f"{method} " + ", ".join(f"{k}={v}" for k, v in options.items() if k in ("f", "eta", "eps", "lr"))
            runs.append(MethodRun(label, "refine", method, options))
    return runs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="runs/text", help="output folder (default: %(default)s)")
    parser.add_argument("--checkpoint", default=None, help="text GAN checkpoint (default: OUT/textgan.pt, "
                        "trained there first if missing)")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--n", type=int, default=640, help="sentences per seed (default: %(default)s)")
    parser.add_argument("--sweep", action="store_true", help=f"run the step-size grid on seed {SWEEP_SEED} instead")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (default: %(default)s)")
    parser.add_argument("--quiet", action="store_true")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    start = time.perf_counter()
    if args.sweep:
        results = run_text(f"{args.out}/sweep", checkpoint=args.checkpoint or f"{args.out}/textgan.pt", n=args.n,
                           seeds=(SWEEP_SEED,), runs=sweep_runs(), progress=not args.quiet)
    else:
        results = run_text(args.out, checkpoint=args.checkpoint, n=args.n, seeds=tuple(args.seeds),
                           progress=not args.quiet)
    model = results["model"]
    print(f"\nmodel: {results['checkpoint']} ({model['corpus']}, {model['channels']} channels, {model['blocks']} "
          f"blocks, {model['iterations']} iterations, batch {model['training']['batch_size']}, trained in "
          f"{model['seconds']} s on {model.get('torch_threads', '?')} thread(s); vocabulary "
          f"{model['vocab_size']} characters)")
    print(f"real: {results['real_held_out_sentences']} held-out sentences; {args.n} generated per seed, "
          f"seeds {results['seeds']}; critic offset {results['critic_offset']:.3f}\n")
    print(format_table(results))
    if not args.sweep:
        print(format_samples(results))
        print(f"settings: DGflow eta {DGFLOW_ETA}, {TEXT_SETTINGS}; methods {[r.label for r in text_methods()]}")
    out = f"{args.out}/sweep" if args.sweep else args.out
    print(f"total {time.perf_counter() - start:.0f} s; wrote {out}/results.json, {out}/samples.json, {out}/table.md")


if __name__ == "__main__":
    main()
