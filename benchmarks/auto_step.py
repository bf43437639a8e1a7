"""Automatic step size and number of steps vs the published defaults and the best hand-tuned setting.

For each model: the base samples, DGflow (KL, gamma 0.01) with the published defaults (eta 0.1,
25 steps), the best setting of a sweep over eta x steps (the metric every 5th step of each eta, so
"best" is an oracle that has seen the metric), ``eta="auto", steps="auto"`` with held-out real samples
(the stop: the smallest unbiased MMD^2 to them, on the samples flattened), and without them: the
discriminator-only rule ``stop="logit-level"`` (importance-weighted level; ``steps="auto"`` refuses to
run without held-out data unless it is asked for) and ``eta="auto"`` with the published 25 steps. The
same latents (seed 0) in every column. The pilot's cost: sample-steps (one sample moved one step) and
CPU seconds, against refining 1,000 samples with the chosen setting.

    python benchmarks/mlp_gans.py runs/mnist/mlp --data DATA                           # the MLP GANs (4 CPU min)
    python benchmarks/auto_step.py --models toy mlp-uniform mlp-sigmoid mlp-oc sndcgan vae --out runs/auto-bench \\
        --data DATA
    python benchmarks/auto_step.py --out runs/auto-bench --table --json benchmarks/results/auto_step.json

Models: ``toy`` the shipped 2-D WGAN-GP (25 Gaussians, self-normalised critic; % high quality,
higher is better, 2,000 samples; held-out: 1,000 fresh points); MNIST (classifier FID of the
project classifier's features, which "auto" does not use, against the 9,000 test images that are not
held out; lower is better; held-out: the other 1,000 test images): ``mlp-uniform`` an MLP GAN with a
uniform 100-d prior and a logit discriminator, ``mlp-sigmoid`` an MLP GAN with a normal prior and a
sigmoid (probability) discriminator, refined through ``dgflow.from_probability``, ``mlp-oc`` the uniform
generator with an over-confident discriminator (``benchmarks/mlp_gans.py``), ``sndcgan`` the hinge
SN-DCGAN (``dgflow train gan``), ``vae`` the VAE through the SN-DCGAN discriminator + corrector
(``dgflow train vae`` / ``corrector``).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

ETAS = [0.01, 0.03, 0.1, 0.3]
MODELS = ["toy", "mlp-uniform", "mlp-sigmoid", "mlp-oc", "sndcgan", "vae"]
NO_HELDOUT = {"logit level": dict(eta="auto", steps="auto", stop="logit-level"),
              "eta auto, 25 steps": dict(eta="auto", steps=25)}


def load(model: str, args: argparse.Namespace):
    """(generator, discriminator, corrector, latent_shape, prior, metric(x) -> float, higher_is_better, heldout)."""
    if model == "toy":
        from dgflow.data.toy import MODES_25G, STD_25G, sample_toy
        from dgflow.experiments.toy2d import load_models
        from dgflow.metrics import high_quality_fraction
        from dgflow.zoo.toy import Z_DIM

        g, critic, _ = load_models("25gaussians")
        return (g, critic, None, (Z_DIM,), "normal", lambda x: 100 * high_quality_fraction(x, MODES_25G, STD_25G),
                True, sample_toy("25gaussians", args.heldout, seed=40_000))
    from dgflow import from_probability
    from dgflow.data import load_mnist
    from dgflow.metrics import ClassifierFeatures, compute_stats, fid_from_stats
    from dgflow.zoo import load_checkpoint

    root = Path(args.models_root)
    c, prior = None, "normal"
    if model.startswith("mlp-"):
        sys.path.insert(0, str(Path(__file__).parent))
        from mlp_gans import load as load_mlp

        kind = model.removeprefix("mlp-")
        g, d = load_mlp(root / "mlp", kind)
        if kind == "sigmoid":
            d = from_probability(d)
        prior = "normal" if kind == "sigmoid" else "uniform"
        z_dim = g[0].in_features
    else:
        ckpt = lambda name: load_checkpoint(root / name / "checkpoint.pt")[0]  # noqa: E731
        g = ckpt("sndcgan" if model == "sndcgan" else "vae")["generator"]
        d = ckpt("sndcgan")["discriminator"]
        c = ckpt("vae-corrector")["corrector"] if model == "vae" else None
        z_dim = g.z_dim
    clf = ClassifierFeatures(load_checkpoint(root / "classifier" / "checkpoint.pt")[0]["classifier"])
    test, _ = load_mnist(args.data, split="test")
    order = torch.randperm(len(test), generator=torch.Generator().manual_seed(40_000))
    heldout, reference = test[order[:args.heldout]], test[order[args.heldout:]]
    with torch.no_grad():
        ref = compute_stats(torch.cat([clf(t) for t in reference.split(1000)]))

    def fid(x: torch.Tensor) -> float:
        with torch.no_grad():
            return fid_from_stats(*compute_stats(torch.cat([clf(t) for t in x.split(1000)])), *ref)

    return g, d, c, (z_dim,), prior, fid, False, heldout


def bench(model: str, args: argparse.Namespace, sweep_file: Path) -> dict:
    """The sweep (kept in ``sweep_file``, reused when it exists) and the automatic choices."""
    from dgflow import generate, io, refine

    g, d, c, shape, prior, metric, higher, heldout = load(model, args)
    n = 2000 if model == "toy" else args.n
    common = dict(latent_shape=shape, prior=prior, corrector=c, seed=0, gamma=0.01)
    if sweep_file.exists():
        out = json.loads(sweep_file.read_text())
        n = out["n"]  # the sweep's sample size, for comparable FIDs
    else:
        out = {"model": model, "n": n, "higher_is_better": higher, "sweep": {}}
        out["base"] = metric(generate(g, n, latent_shape=shape, prior=prior, seed=0)[1])
        print(f"{model}: base {out['base']:.2f}", flush=True)
        for eta in ETAS:
            start = time.process_time()
            res = refine(g, d, n=n, eta=eta, steps=args.steps, save_interval=5, batch_size=n, progress=False, **common)
            out["sweep"][eta] = {"steps": res.steps, "metric": [metric(x) for x in res.x_history],
                                 "mean_logit": res.logit_history.mean(1).tolist(),
                                 "cpu_seconds": time.process_time() - start}
            print(f"  eta {eta}: " + " ".join(f"{s}:{m:.1f}" for s, m in zip(res.steps, out["sweep"][eta]["metric"])),
                  flush=True)
        io.write_json(sweep_file, out)
    out["auto"] = {}
    for label, options in {"held-out": dict(eta="auto", steps="auto", heldout=heldout), **NO_HELDOUT}.items():
        out["auto"][label] = run_auto(g, d, metric, n, options, common, args.pilot)
        a = out["auto"][label]
        print(f"  auto, {label}: {a['metric']:.2f}  pilot {a['pilot_cpu_seconds']:.1f} CPU s, refining 1,000: "
              f"{a['refine_1000_cpu_seconds']:.1f} CPU s  ({a['reason']})", flush=True)
    return out


def run_auto(g, d, metric, n: int, options: dict, common: dict, pilot: int) -> dict:
    """The pilot alone (``dgflow.autotune``, timed), then the chosen options on the ``n`` samples (timed)."""
    from dgflow import autotune, refine

    start = time.process_time()
    chosen, auto = autotune(g, d, pilot=pilot, progress=False, **options, **common)
    pilot_seconds = time.process_time() - start
    start = time.process_time()
    kept = {k: v for k, v in chosen.items() if k in ("eta", "steps", "f")}
    res = refine(g, d, n=n, save_interval=None, batch_size=n, progress=False, **{**common, **kept})
    refine_seconds = time.process_time() - start
    return {"metric": metric(res.x), "chosen": auto["chosen"], "reason": auto["reason"],
            "pilot_sample_steps": auto["pilot_sample_steps"], "pilot_cpu_seconds": pilot_seconds,
            "refine_1000_cpu_seconds": refine_seconds * 1000 / n, "info": auto}


def table(results: list[dict]) -> str:
    lines = ["| model | metric | base | defaults (eta 0.1, 25 steps) | best of sweep (eta, steps) | **auto, held-out** "
             "(eta, steps) | auto / best | no held-out: logit-level rule (eta, steps) | no held-out: eta auto, 25 steps "
             "| pilot: sample-steps (/ 1,000 x chosen steps); CPU s (/ refining 1,000) |",
             "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    order = {m: i for i, m in enumerate(MODELS)}
    for r in sorted(results, key=lambda r: order.get(r["model"], 99)):
        higher = r["higher_is_better"]
        pick = max if higher else min
        sweep = {(float(eta), s): m for eta, rec in r["sweep"].items() for s, m in zip(rec["steps"], rec["metric"])}
        best = pick(sweep, key=sweep.get)
        name = "% high quality (higher better)" if higher else "classifier FID (lower better)"

        def fmt(label: str) -> str:
            a = r["auto"][label]
            return f"{a['metric']:.1f} ({a['chosen']['eta']:g}, {a['chosen']['steps']})"

        a = r["auto"]["held-out"]
        steps = a["chosen"]["steps"]
        ratio = a["metric"] / sweep[best]
        cost = a["pilot_sample_steps"]
        versus = f"{cost / (1000 * steps):.2f}" if steps else "0 steps chosen"
        cpu = a["pilot_cpu_seconds"]
        cpu_versus = f"{cpu / a['refine_1000_cpu_seconds']:.2f}" if steps else "-"
        model = r["model"] + ("" if r["model"] == "toy" else f" ({r['n']} samples)")
        lines.append(f"| {model} | {name} | {r['base']:.1f} | {sweep[(0.1, 25)]:.1f} | {sweep[best]:.1f} "
                     f"({best[0]:g}, {best[1]}) | **{fmt('held-out')}** | {ratio:.2f} | {fmt('logit level')} | "
                     f"{fmt('eta auto, 25 steps')} | {cost:,} ({versus}); {cpu:.1f} ({cpu_versus}) |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--models", nargs="*", default=[], choices=MODELS)
    parser.add_argument("--out", required=True, help="folder for one JSON per model (existing ones are reused)")
    parser.add_argument("--table", action="store_true", help="print the table of every JSON in --out")
    parser.add_argument("--models-root", default="runs/mnist",
                        help="folder with classifier/, sndcgan/, vae/, vae-corrector/, mlp/ (default: %(default)s)")
    parser.add_argument("--data", help="folder holding mnist.npz (MNIST models)")
    parser.add_argument("--n", type=int, default=500, help="MNIST samples per setting (default: %(default)s)")
    parser.add_argument("--steps", type=int, default=40, help="sweep length; metric every 5 steps (default: %(default)s)")
    parser.add_argument("--heldout", type=int, default=1000, help="held-out real samples for auto (default: %(default)s)")
    parser.add_argument("--pilot", type=int, default=256, help="pilot samples of auto (default: %(default)s)")
    parser.add_argument("--json", help="also write every model's results to this one JSON file")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    out = Path(args.out)
    from dgflow import io

    for model in args.models:
        if model != "toy" and args.data is None:
            parser.error(f"--data is needed for {model}")
        io.write_json(out / f"{model}.json", bench(model, args, out / "sweeps" / f"{model}.json"))
    results = [json.loads(p.read_text()) for p in sorted(out.glob("*.json"))]
    if results and (args.table or args.models):
        print(table(results))
    if args.json:
        io.write_json(args.json, {r["model"]: r for r in results})


if __name__ == "__main__":
    main()
