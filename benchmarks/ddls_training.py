"""GAN training with DDLS in the loop vs plain training (MNIST SN-DCGAN, same seed and budget).

Trains two SN-DCGANs with ``dgflow.training.images.train_image_gan`` that differ only in
``ddls_steps`` (the fake samples of each discriminator step come from DDLS-refined latents, as
the unofficial DDLS cGAN code does), then scores ``--n`` samples of each generator with the
project's classifier (classifier FID / IS against the test split). Training resumes from the
checkpoints under ``--out``, so a rerun only scores.

    python benchmarks/ddls_training.py --classifier runs/mnist/classifier/checkpoint.pt
    python benchmarks/ddls_training.py --iterations 300 --ddls-steps 3 --out runs/ddls-training
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import torch

from dgflow import generate, io
from dgflow.metrics import ClassifierFeatures, compute_stats, fid_from_stats, inception_score
from dgflow.training.images import load_images, train_image_gan
from dgflow.zoo import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def score(generator: torch.nn.Module, classifier: ClassifierFeatures, real_stats, n: int) -> dict[str, float]:
    _, x = generate(generator, n, latent_shape=(generator.z_dim,), seed=0)
    with torch.no_grad():
        feats = torch.cat([classifier(c) for c in x.split(500)])
        logits = torch.cat([classifier.logits(c) for c in x.split(500)])
    return {"fid_classifier": fid_from_stats(*compute_stats(feats), *real_stats),
            "is_classifier": inception_score(logits, splits=10)[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--classifier", default="runs/mnist/classifier/checkpoint.pt")
    parser.add_argument("--out", default="runs/ddls-training")
    parser.add_argument("--iterations", type=int, default=300)
    parser.add_argument("--ddls-steps", type=int, default=3)
    parser.add_argument("--n", type=int, default=1000, help="samples scored per generator")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    classifier = ClassifierFeatures(load_checkpoint(args.classifier)[0]["classifier"])
    real = load_images("mnist", args.data, "test")[0]
    with torch.no_grad():
        real_stats = compute_stats(torch.cat([classifier(c) for c in real.split(500)]))
    rows = []
    for name, steps in (("plain", 0), (f"DDLS in the loop ({args.ddls_steps} steps)", args.ddls_steps)):
        folder = out / ("plain" if steps == 0 else f"ddls{steps}")
        began = time.perf_counter()
        path = train_image_gan("mnist", args.data, folder, iterations=args.iterations, ddls_steps=steps, seed=0)
        seconds = time.perf_counter() - began
        models, meta = load_checkpoint(path)
        rows.append({"training": name, "iterations": args.iterations, "train_seconds_this_call": round(seconds, 1),
                     **score(models["generator"], classifier, real_stats, args.n)})
    io.write_json(out / "results.json", rows)
    print(f"| training | iterations | classifier FID ({args.n} samples) | classifier IS |")
    print("|---|---:|---:|---:|")
    for r in rows:
        print(f"| {r['training']} | {r['iterations']} | {r['fid_classifier']:.2f} | {r['is_classifier']:.2f} |")


if __name__ == "__main__":
    main()
