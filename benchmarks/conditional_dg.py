"""Class-conditional Discriminator Guidance on MNIST: per-class accuracy of guided vs unguided samples.

Reads a finished ``dgflow sample`` run of a class-conditional denoiser (``configs/dg-mnist-cond.yml``:
sample i asks for class ``i % 10``; ``guided`` and ``unguided`` share latents and labels) and reports per
variant the run's classifier FID / IS (its ``metrics.json``) and the **per-class accuracy**: how often the
project's classifier puts a sample in the class it was asked for (``dgflow.metrics.per_class_accuracy`` on
the saved uint8 samples), overall and for the worst class.

    dgflow sample --config configs/dg-mnist-cond.yml
    python benchmarks/conditional_dg.py --run exps/dg-mnist-cond --classifier runs/mnist/classifier/checkpoint.pt

The table is printed and written with the per-class accuracies to ``--json``
(default ``benchmarks/results/conditional_dg.json``).
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from dgflow import io
from dgflow.metrics import ClassifierFeatures
from dgflow.zoo.loading import load_model

from conditional import samples_accuracy  # the sibling benchmark's reader of a run's samples file

ROOT = Path(__file__).resolve().parents[1]
VARIANTS = ("unguided", "guided")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", default="exps/dg-mnist-cond", help="a finished `dgflow sample` run folder "
                        "(default: %(default)s)")
    parser.add_argument("--classifier", default="runs/mnist/classifier/checkpoint.pt",
                        help="`dgflow train classifier` checkpoint (default: %(default)s)")
    parser.add_argument("--json", default=str(ROOT / "benchmarks" / "results" / "conditional_dg.json"))
    args = parser.parse_args()
    run = Path(args.run)
    classifier = ClassifierFeatures(load_model("classifier", "classifier", args.classifier, {}, "classifier",
                                               torch.device("cpu"))).logits
    metrics = json.loads((run / "metrics.json").read_text())
    rows = {}
    for variant in VARIANTS:
        m = metrics["variants"][variant]
        rows[variant] = {"fid_classifier": m["fid_classifier"], "is_classifier": m["is_classifier"],
                         **samples_accuracy(classifier, run / "samples" / f"{variant}.npz", 10)}
    saved = {v: np.load(run / "samples" / f"{v}.npz") for v in VARIANTS}
    same_labels = bool(np.array_equal(saved["guided"]["labels"], saved["unguided"]["labels"]))
    print(format_table(rows))
    print(f"guided and unguided ask for the same labels: {same_labels}")
    io.write_json(Path(args.json), {"run": run.name, "num_samples": metrics["num_samples"],
                                    "same_labels": same_labels, "rows": rows})


def format_table(rows: dict) -> str:
    lines = ["| variant | classifier FID | classifier IS | per-class accuracy | worst class (accuracy) |",
             "|---|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['fid_classifier']:.2f} | {r['is_classifier']:.2f} | {100 * r['accuracy']:.1f}% | "
                     f"{r['worst_class']} ({100 * r['min']:.1f}%) |")
    lines += ["", "| variant | " + " | ".join(str(c) for c in range(10)) + " |", "|---|" + "---:|" * 10]
    for name, r in rows.items():
        lines.append(f"| {name} | " + " | ".join(f"{100 * a:.1f}" for a in r["per_class"]) + " |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
