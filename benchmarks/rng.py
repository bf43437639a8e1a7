#!/usr/bin/env python
"""Cost per element of dgflow's per-sample normal draws against ``torch.randn``.

A refiner draws ``noise.normal(shape, step=n, stream=...)`` once per step for a batch; this times
exactly that (a fresh :class:`dgflow.SampleNoise` per batch, steps 0..S-1) against ``torch.randn`` of
the same shape per step. CPU time (``time.process_time``) of one thread; the implementations
alternate within each repetition and the table reports medians, so a loaded machine slows both alike.

    python benchmarks/rng.py                  # ~20 s
    python benchmarks/rng.py --repeats 21 --json benchmarks/results/rng_cpu.json
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time

import torch

import dgflow

CASES = [  # (label, batch, per-sample shape)
    ("MLP GAN latents", 500, (100,)),
    ("2-D latents", 2000, (2,)),
    ("conv latents", 128, (32,)),
    ("32x32 RGB images (data space)", 64, (3, 32, 32)),
]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=25)
    p.add_argument("--repeats", type=int, default=11)
    p.add_argument("--json", metavar="PATH")
    args = p.parse_args()
    torch.set_num_threads(1)

    def ours(batch, shape):
        noise = dgflow.SampleNoise(0, torch.arange(batch))
        for n in range(args.steps):
            noise.normal(shape, step=n, stream="dgflow")

    def randn(batch, shape):
        for _ in range(args.steps):
            torch.randn(batch, *shape)

    rows = []
    for label, batch, shape in CASES:
        elements = batch * args.steps * torch.Size(shape).numel()
        times: dict[str, list[float]] = {"SampleNoise.normal": [], "torch.randn": []}
        ours(batch, shape), randn(batch, shape)  # warm-up
        for _ in range(args.repeats):
            for name, fn in (("SampleNoise.normal", ours), ("torch.randn", randn)):
                t0 = time.process_time()
                fn(batch, shape)
                times[name].append(time.process_time() - t0)
        med = {k: statistics.median(v) for k, v in times.items()}
        rows.append(dict(case=label, batch=batch, shape=list(shape), steps=args.steps,
                         ns_per_element={k: v / elements * 1e9 for k, v in med.items()},
                         ratio=med["SampleNoise.normal"] / med["torch.randn"]))
    print(f"# dgflow {dgflow.__version__} | torch {torch.__version__} | python {platform.python_version()} | "
          f"1 thread, CPU time, median of {args.repeats} alternating repeats, {args.steps} steps per batch")
    print("| case | batch x shape | SampleNoise ns/element | torch.randn ns/element | ratio |")
    print("|---|---|---:|---:|---:|")
    for r in rows:
        ns = r["ns_per_element"]
        print(f"| {r['case']} | {r['batch']} x {tuple(r['shape'])} | {ns['SampleNoise.normal']:.1f} | "
              f"{ns['torch.randn']:.1f} | {r['ratio']:.2f} |")
    if args.json:
        with open(args.json, "w") as fh:
            json.dump({"torch": torch.__version__, "repeats": args.repeats, "rows": rows}, fh, indent=2)


if __name__ == "__main__":
    main()
